"""Which compute dtype a device runs fast: the `autocast=auto` setting.

bf16 autocast halves the time of a forward and backward pass on a GPU or a CPU that multiplies bf16 matrices
natively (AVX-512 or AMX through oneDNN), but on a CPU without such kernels PyTorch falls back to a reference
bf16 matmul: on an AVX2-only CPU (AMD EPYC Milan) a bf16 matmul ran 11x slower than float32 and a training
step of the `tiny-cpu` preset 10x slower (67 s against 6.6 s). `auto` picks bf16 only where it is native.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from oneshot_rlvr.errors import RlvrError

AUTOCAST_CHOICES = ("auto", "bf16", "none")
"""Values of the `autocast` setting (resolved per device by `resolve_autocast`)."""

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` has fast bf16 matmul kernels (not PyTorch's reference fallback)."""
    import torch  # (here: the `autocast` choices above are read where torch is not needed)

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "cpu":
        # oneDNN's answer: AVX-512 (BW, VL, DQ) or newer on x86 (AVX512-BF16 or AMX in hardware, converted on
        # older AVX-512: not measured here), the BF16 extension on Arm.
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_autocast(setting: str, device: torch.device) -> str:
    """`autocast` setting -> "bf16" or "none" on `device`; warns when bf16 is asked of a device without it."""
    if setting not in AUTOCAST_CHOICES:
        raise RlvrError(f"autocast={setting!r}: choose from {', '.join(AUTOCAST_CHOICES)}")
    native = native_bf16(device)
    if setting == "auto":
        return "bf16" if native else "none"
    if setting == "bf16" and not native:
        log.warning("autocast=bf16 on %s, which has no native bf16 matmul: forward and backward passes run many "
                    "times slower than in float32 (autocast=auto picks float32 here)", describe(device))
    return setting


def describe(device: torch.device) -> str:
    """A device's name for messages: the GPU's model, or the CPU's vector extension (AVX2, AVX512, ...)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"this CPU ({torch.backends.cpu.get_cpu_capability()})"
    return str(device)
