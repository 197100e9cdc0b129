"""Run under torchrun by test_train_ddp.py: after `dist.shutdown`, no gloo thread may outlive the process group.

A thread left running meets interpreter shutdown, where it can abort a finished run (SIGABRT). Exit 3 names them.
"""

from __future__ import annotations

import os
import sys

import torch

from oneshot_rlvr.models.load import load_model
from oneshot_rlvr.train import dist


def native_threads() -> list[str]:
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:  # the thread ended while being listed
            pass
    return names


def main() -> None:
    # What makes the check bite: transformers imports torch.distributed.nn.functional only once the group exists.
    assert "torch.distributed.nn.functional" not in sys.modules
    info = dist.init(torch.device("cpu"))
    assert info.enabled and any("gloo" in name for name in native_threads())
    load_model(sys.argv[1])
    dist.barrier(info)
    dist.shutdown(info)
    left = [name for name in native_threads() if "gloo" in name]
    if left:
        print(f"rank {info.rank}: gloo threads still running after shutdown: {left}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
