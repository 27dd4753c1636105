"""A run's life around the training: its output folder (one run at a time, outputs published
as a set), its log, its callbacks, and the record of a failure."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, TYPE_CHECKING

import numpy as np

from jaxphys import callbacks as cb
from jaxphys.errors import TrainingDiverged
from jaxphys.experiments.console import Console, EpochLines
from jaxphys.experiments.environment import environment
from jaxphys.runs import RunDirectory

if TYPE_CHECKING:
  from jaxphys.experiments.base import BaseConfig, TrainingConfig

__all__ = ["open_run", "training_callbacks", "data_identity", "write_json", "run_identity",
           "resume_record", "SelectBest", "selected_epoch"]

LOG = "log.txt"


def write_json(path: Path, obj: Any) -> Path:
  """Writes ``obj`` as indented JSON; NaN or infinity is an error, never written.

  >>> import tempfile
  >>> write_json(Path(tempfile.mkdtemp()) / "r.json", {"auc": float("nan")})
  Traceback (most recent call last):
  ValueError: Out of range float values are not JSON compliant: nan
  """
  text = json.dumps(obj, indent=2, allow_nan=False, default=_plain)
  Path(path).write_text(text + "\n", encoding="utf-8")
  return Path(path)


def _plain(obj):
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  if isinstance(obj, (np.integer, np.floating, np.bool_)):
    return obj.item()
  raise TypeError(f"not JSON-able: {type(obj).__name__}")


@contextlib.contextmanager
def open_run(out: Path, config: BaseConfig, quiet: bool) -> Iterator[tuple]:
  """``(run, say)``: the locked :class:`~jaxphys.runs.RunDirectory` of ``out`` and a
  :class:`Console` logging into its staging folder. The staged files are published as a
  set when the body returns; an exception leaves the previous set untouched and records
  the failure beside it.

  >>> import tempfile
  >>> from jaxphys.experiments.base import BaseConfig
  >>> out = Path(tempfile.mkdtemp())
  >>> with open_run(out, BaseConfig(), quiet=True) as (run, say):
  ...   say("one line of the log")
  >>> (out / "latest" / "log.txt").read_text().splitlines()
  ['one line of the log']
  """
  with RunDirectory(out) as run:
    say = Console(quiet=quiet, log=run.staging / LOG)
    try:
      yield run, say
    except Exception as e:
      say(f"failed: {e}", to_console=False)
      say.close()
      with contextlib.suppress(Exception):  # the run's own error is the one to report
        run.record_failure(failure_record(e, config, log=(run.staging / LOG)))
      raise
    say.close()
    run.publish()


def failure_record(error: Exception, config, log: Optional[Path] = None) -> dict:
  """What a failed run leaves: the error, where it happened, the config, the log's last
  lines and the environment."""
  record = {"failure": str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__,
            "error_type": type(error).__name__, "config": dataclasses.asdict(config),
            "environment": environment()}
  if isinstance(error, TrainingDiverged):
    record.update(epoch=error.epoch, step=error.step,
                  history={k: np.asarray(v).tolist() for k, v in error.history.items()})
  if log is not None and log.is_file():
    record["log_tail"] = log.read_text(encoding="utf-8").splitlines()[-50:]
  return record



def data_identity(*arrays) -> str:
  """SHA-256 of the arrays' shapes, dtypes and bytes: what the run trained and tested on.

  >>> data_identity(np.zeros(3)) == data_identity(np.zeros(3)) != data_identity(np.ones(3))
  True
  """
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B"))
  return h.hexdigest()


def run_identity(config: BaseConfig, data: str) -> dict:
  """The checkpoint's record of a run: every setting (but ``resume`` itself) and the data's
  identity.

  >>> from jaxphys.experiments.base import TrainingConfig
  >>> record = run_identity(TrainingConfig(resume=True), data="ab12")
  >>> record["data"], "resume" in record, record["lr"]
  ('ab12', False, 0.001)
  """
  settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "resume"}
  return {**settings, "data": data}


class SelectBest(cb.EarlyStopping):
  """``EarlyStopping(restore_best=True)`` that also weighs the epochs a resumed run restored:
  the best of them comes back from its checkpoint (the Checkpointer keeps the best by the
  same metric); if that checkpoint is gone, the restored latest epoch stands in for them.
  ``best_epoch`` (0-based) is the epoch of the state that training returns."""

  def __init__(self, monitor: str, mode: str, patience: int, checkpointer=None):
    super().__init__(monitor, mode=mode, patience=patience, restore_best=True)
    self.checkpointer = checkpointer

  def on_train_begin(self, loop) -> None:
    super().on_train_begin(loop)
    past = [float(np.mean(v)) for v in loop.history.get(self.monitor, [])]
    if not past:
      return
    best = int(np.argmin(past) if self.mode == "min" else np.argmax(past))
    restored = None
    if best < len(past) - 1 and best + 1 in (self.checkpointer.all_epochs() if self.checkpointer else ()):
      restored = self.checkpointer.restore(loop.state, loop.key, epochs_done=best + 1)
    if restored is None:  # the restored latest epoch stands in
      best = len(past) - 1
    self.best, self.best_epoch = past[best], best
    self.best_state = loop.state if restored is None else restored[1]
    self._wait = len(past) - 1 - best


def training_callbacks(config: TrainingConfig, *, epochs: int, say: Console, staging: Path, checkpoints: Path,
                       identity: dict, allowed_changes: Sequence[str], monitor: str, mode: str, prefix: str = "") -> list:
  """The callbacks of one training: validation-based selection (and early stopping with
  ``config.patience``), checkpoints (``config.checkpoint_every``, ``config.resume``),
  ``metrics.csv``, TensorBoard events, per-epoch log lines and, unless quiet, a progress
  display. ``epochs``: this training's; ``staging``: the folder for its files.

  >>> import tempfile
  >>> from jaxphys.experiments.base import TrainingConfig
  >>> folder = Path(tempfile.mkdtemp())
  >>> callbacks = training_callbacks(
  ...     TrainingConfig(quiet=True), epochs=3, say=Console(quiet=True), staging=folder,
  ...     checkpoints=folder / "checkpoints", identity={}, allowed_changes=(), monitor="eval_loss",
  ...     mode="min")
  >>> [type(c).__name__ for c in callbacks]
  ['SelectBest', 'CSVLogger', 'TensorBoard', 'EpochLines']
  """
  staging.mkdir(parents=True, exist_ok=True)
  checkpointer = None
  if config.checkpoint_every or config.resume:
    checkpointer = cb.Checkpointer(
        checkpoints, every=config.checkpoint_every or epochs, keep=2, best_metric=monitor,
        best_mode=mode, resume=config.resume, config=identity, allowed_changes=tuple(allowed_changes))
  select = SelectBest(monitor, mode, config.patience or epochs + 1, checkpointer)
  callbacks = [c for c in (checkpointer, select) if c is not None]
  callbacks += [cb.CSVLogger(staging / "metrics.csv"), cb.TensorBoard(staging / "tensorboard"),
                EpochLines(say, prefix)]
  if not config.quiet:
    callbacks.append(cb.ProgressBar())
  return callbacks


def resume_record(callbacks: Sequence[cb.Callback]) -> dict:
  """What a resumed training restored and which allowed settings changed (for results.json):
  ``{"resumed_from": epochs or None, "changes": [{"at_epoch", "setting", "from", "to"}, ...]}``.

  >>> resume_record([])
  {'resumed_from': None, 'changes': []}
  """
  for c in callbacks:
    if isinstance(c, cb.Checkpointer):
      return {"resumed_from": c.resumed_from, "changes": list(c.changes)}
  return {"resumed_from": None, "changes": []}


def selected_epoch(callbacks: Sequence[cb.Callback]) -> int:
  """The 1-based epoch whose state training returned (chosen on validation).

  >>> select = SelectBest("eval_loss", "min", patience=10)
  >>> select.best_epoch = 4
  >>> selected_epoch([select])
  5
  """
  select = next(c for c in callbacks if isinstance(c, SelectBest))
  return select.best_epoch + 1
