"""Live experiment tracking: each metrics row also goes to Weights & Biases, TensorBoard and/or MLflow.

`report_to` names the backends; `RUN/metrics.jsonl` stays the record and a backend is a mirror of it. Each backend
is an optional package imported only when named (a missing one is a one-line error with the install command). A
backend that fails mid-run (network, disk) is switched off after one warning and the run goes on.

Where each writes, under the run folder: `wandb/` (W&B; offline with WANDB_MODE=offline), `tensorboard/`
(`tensorboard --logdir RUN/tensorboard`), `mlruns/` (MLflow's local file store, unless MLFLOW_TRACKING_URI names
another). The ids a resumed run continues (W&B's run id, MLflow's) are kept in `RUN/tracking.json`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from oneshot_rlvr.errors import RlvrError, install_hint
from oneshot_rlvr.runfolder import write_atomic

log = logging.getLogger("oneshot_rlvr.tracking")

BACKENDS = ("wandb", "tensorboard", "mlflow")
_PACKAGES = {"wandb": "wandb", "tensorboard": "tensorboard", "mlflow": "mlflow"}
INSTALL_HINT = install_hint("tracking")
STATE_FILE = "tracking.json"
DEFAULT_PROJECT = "oneshot-rlvr"


def parse_report_to(value: str) -> list[str]:
    """`"wandb,tensorboard"` -> ["wandb", "tensorboard"]; "" and "none" -> []; unknown names are an error."""
    names = [n.strip().lower() for n in value.replace(" ", ",").split(",") if n.strip()]
    if names in ([], ["none"]):
        return []
    chosen: list[str] = []
    for name in names:
        if name not in BACKENDS:
            raise RlvrError(f"setting report_to={value!r}: {name!r} is not a tracker; choose from "
                            f"{', '.join(BACKENDS)} or none")
        if name not in chosen:
            chosen.append(name)
    return chosen


def check_installed(names: list[str]) -> None:
    """Fail before a run starts, not after its model has loaded, when a named backend is not installed."""
    for name in names:
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            raise RlvrError(f"setting report_to={name}: the {_PACKAGES[name]} package is not installed; "
                            f"{INSTALL_HINT} (or pip install {_PACKAGES[name]})")


@dataclass
class Target:
    """What a tracker reports on: the run folder, the names it shows under, the settings it logs once."""

    run_dir: Path
    project: str
    name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    resume: bool = False
    """Continue the backends' record of this run folder (same W&B / MLflow run) instead of starting one."""
    purge_after: int | None = None
    """TensorBoard: hide events logged past this step before (a resume from an earlier checkpoint)."""
    log_config: bool = True


class Backend(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


def _numeric(row: Mapping[str, Any]) -> dict[str, float]:
    """The row's finite numbers (metrics.jsonl writes a non-finite value as null; trackers get nothing)."""
    out = {}
    for key, value in row.items():
        if key != "step" and isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


class Tracker:
    """The open backends; a backend that raises is reported once and switched off."""

    def __init__(self, backends: dict[str, Backend]):
        self.backends = backends

    @property
    def active(self) -> list[str]:
        return list(self.backends)

    def log(self, row: Mapping[str, Any], *, step: int | None = None) -> None:
        """Send a metrics row (its `step`, unless given) to every backend still on."""
        at = int(row["step"] if step is None else step)
        metrics = _numeric(row)
        for name in list(self.backends):
            self._call(name, lambda b: b.log(metrics, at))

    def close(self) -> None:
        for name in list(self.backends):
            self._call(name, lambda b: b.close())
        self.backends = {}

    def _call(self, name: str, action: Callable[[Backend], None]) -> None:
        try:
            action(self.backends[name])
        except Exception as err:  # a tracker's failure must never stop training
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            log.warning("report_to %s failed (%s: %s); switched off for the rest of the run, metrics.jsonl "
                        "keeps every row", name, type(err).__name__, first)
            self.backends.pop(name, None)


def _state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATE_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RlvrError(f"{path}: not readable JSON ({err}); delete it to start new tracker runs") from None
    return data if isinstance(data, dict) else {}


def _save_state(run_dir: Path, state: dict[str, Any]) -> None:
    path = run_dir / STATE_FILE
    write_atomic(path, json.dumps(state, indent=1) + "\n")


class WandbBackend:
    """One W&B run per run folder; its id is kept so that a resume (or `rlvr eval --run`) continues it."""

    def __init__(self, target: Target, state: dict[str, Any]):
        import wandb

        run_id = state.get("wandb_id") if target.resume else None
        self.run = wandb.init(project=target.project, name=target.name, id=run_id or secrets.token_hex(4),
                              resume="allow", dir=str(target.run_dir), reinit="create_new")
        state["wandb_id"] = self.run.id
        # Our step is the x-axis: W&B's own step must only grow, which a resume from an earlier checkpoint or
        # a later `rlvr eval --run` of early checkpoints would break.
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")
        if target.log_config:
            self.run.config.update(dict(target.config), allow_val_change=True)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log({**metrics, "step": step})

    def close(self) -> None:
        self.run.finish()


class TensorBoardBackend:
    """Scalars under RUN/tensorboard/, one tag per metric; the config as a text summary."""

    def __init__(self, target: Target, state: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        purge = None if target.purge_after is None else target.purge_after + 1
        self.writer = SummaryWriter(log_dir=str(target.run_dir / "tensorboard"), purge_step=purge)
        if target.log_config:
            text = yaml.safe_dump(dict(target.config), sort_keys=False)
            self.writer.add_text("config", "    " + text.replace("\n", "\n    "), global_step=target.purge_after or 0)
            self.writer.flush()

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()  # the curves are live, and a crash loses nothing

    def close(self) -> None:
        self.writer.close()


class MlflowBackend:
    """An MLflow run in the experiment named by `tracking_project`, through the client (no global state)."""

    def __init__(self, target: Target, state: dict[str, Any]):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or (target.run_dir / "mlruns").resolve().as_uri()
        with _file_store_allowed(uri):
            self.client = MlflowClient(tracking_uri=uri)
            self.client.search_experiments(max_results=1)  # opens (and caches) the store
        run_id = state.get("mlflow_id") if target.resume else None
        if run_id is None:
            experiment = self.client.get_experiment_by_name(target.project)
            experiment_id = (experiment.experiment_id if experiment is not None
                             else self.client.create_experiment(target.project))
            run_id = self.client.create_run(experiment_id, run_name=target.name).info.run_id
            if target.log_config:  # (params are write-once in MLflow: logged when the run is made)
                params = [Param(k, str(v)[:500]) for k, v in target.config.items()]
                self.client.log_batch(run_id, params=params)
        else:
            self.client.update_run(run_id, status="RUNNING")
        state["mlflow_id"] = run_id
        self.run_id = run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


@contextmanager
def _file_store_allowed(uri: str) -> Iterator[None]:
    """MLflow 3 refuses its file store unless MLFLOW_ALLOW_FILE_STORE is set: a run folder's own mlruns/ is
    what we want by default (no database to migrate, nothing beyond mlflow-skinny), so it is opted in here,
    for that store only. MLFLOW_TRACKING_URI=sqlite:///... or a server uses MLflow's recommended stores."""
    if not uri.startswith("file:") or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


FACTORIES: dict[str, Callable[[Target, dict[str, Any]], Backend]] = {
    "wandb": WandbBackend, "tensorboard": TensorBoardBackend, "mlflow": MlflowBackend,
}


def open_tracker(names: list[str], target: Target) -> Tracker:
    """Open each named backend; a missing package is an error, any other failure to open a warning."""
    check_installed(names)
    state = _state(target.run_dir)
    backends: dict[str, Backend] = {}
    for name in names:
        try:
            backends[name] = FACTORIES[name](target, state)
        except Exception as err:  # offline, no login, unwritable folder: the run goes on without it
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            log.warning("report_to %s could not start (%s: %s); running without it, metrics.jsonl keeps every "
                        "row", name, type(err).__name__, first)
    if backends:
        _save_state(target.run_dir, state)
        log.info("reporting to %s", ", ".join(backends))
    return Tracker(backends)


def run_tracker(settings: Mapping[str, Any], run_dir: Path, *, resume: bool, purge_after: int | None = None,
                log_config: bool = True) -> Tracker:
    """The tracker a run's settings ask for (`report_to`, `tracking_project`, `tracking_name`)."""
    names = parse_report_to(str(settings.get("report_to") or ""))
    if not names:
        return Tracker({})
    project = str(settings.get("tracking_project") or DEFAULT_PROJECT)
    name = str(settings.get("tracking_name") or run_dir.resolve().name)
    target = Target(run_dir, project, name, settings, resume=resume, purge_after=purge_after, log_config=log_config)
    return open_tracker(names, target)
