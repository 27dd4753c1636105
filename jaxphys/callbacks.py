"""Callbacks: code that :func:`jaxphys.fit` runs at the start, after every epoch and at
the end of training, as Keras callbacks do.

A callback subclasses :class:`Callback` and overrides any of its three hooks. Each gets
the :class:`Loop`, whose attributes it may read and set: ``loop.stop_training = True``
ends training after this epoch, ``loop.state`` may be kept (it stays valid after later
epochs) or replaced. Provided: :class:`EarlyStopping`, :class:`CSVLogger`,
:class:`TensorBoard`, :class:`ProgressBar` and (from :mod:`jaxphys.checkpoint`) the
``Checkpointer``.

>>> import jax, optax, numpy as np, jaxphys as jp
>>> class Stop(jp.callbacks.Callback):
...   def on_epoch_end(self, loop, epoch, logs):
...     loop.stop_training = logs["train_loss"] < 0.69
>>> x, y = np.ones((8, 2), np.float32), np.arange(8) % 2
>>> model, tx = jp.LogisticRegression(), optax.sgd(0.1)
>>> state = jp.create_train_state(jax.random.key(0), model, tx, x)
>>> step = jp.make_train_step(model.apply, jp.binary_cross_entropy, tx)
>>> _, history = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=5, batch_size=8, callbacks=[Stop()])
>>> len(history["train_loss"]) <= 5
True
"""

from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Callback", "Loop", "EarlyStopping", "CSVLogger", "TensorBoard", "ProgressBar",
           "Checkpointer"]


@dataclasses.dataclass
class Loop:
  """The state of a :func:`~jaxphys.fit` call, shared with its callbacks.

  Attributes:
    state: the current :class:`~jaxphys.TrainState` (after the latest epoch); a callback
      may keep it (nothing handed out is donated) or replace it (a restored checkpoint
      in ``on_train_begin``, the best state in ``on_train_end``).
    key: the PRNG key given to ``fit``.
    epochs: one past the last epoch to run.
    initial_epoch: the first epoch to run (``on_train_begin`` may change it: resume).
    history: metric name -> list, one entry per epoch done.
    stop_training: set True to stop after the current epoch.

  >>> loop = Loop(state=None, key=None, epochs=3)
  >>> loop.initial_epoch, loop.history, loop.stop_training
  (0, {}, False)
  """

  state: Any
  key: Any
  epochs: int
  initial_epoch: int = 0
  history: dict = dataclasses.field(default_factory=dict)
  stop_training: bool = False


class Callback:
  """Base class of callbacks: every hook is a no-op, override the ones you need.

  >>> class Print(Callback):
  ...   def on_epoch_end(self, loop, epoch, logs):
  ...     print(epoch, sorted(logs))
  >>> Print().on_epoch_end(Loop(state=None, key=None, epochs=1), 0, {"train_loss": 0.5})
  0 ['train_loss']
  """

  def on_train_begin(self, loop: Loop) -> None:
    """Before the first epoch."""

  def on_epoch_end(self, loop: Loop, epoch: int, logs: dict) -> None:
    """After epoch ``epoch`` (0-based); ``logs`` is its record (``train_loss``, ...)."""

  def on_train_end(self, loop: Loop) -> None:
    """After the last epoch, or after the one a callback stopped at."""


def _scalar(value) -> float:
  """A metric as one number: the mean over K runs."""
  return float(np.mean(np.asarray(value)))


def _columns(logs: dict) -> dict:
  """``logs`` as flat columns: a ``(K,)`` metric becomes ``name[0]`` .. ``name[K-1]``."""
  out = {}
  for k, v in logs.items():
    a = np.asarray(v)
    if a.ndim == 0:
      out[k] = float(a)
    else:
      out.update({f"{k}[{i}]": float(x) for i, x in enumerate(a.ravel())})
  return out


class EarlyStopping(Callback):
  """Stops training when ``monitor`` has not improved for ``patience`` epochs.

  Args:
    monitor: a history key, e.g. ``"eval_loss"`` (for K runs: the mean over runs).
    patience: epochs without improvement to wait before stopping.
    mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` for names with ``accuracy``,
      ``auc``, ``f1`` or ``significance``, else ``"min"``).
    min_delta: the least change that counts as an improvement.
    restore_best: at the end, ``loop.state`` (what ``fit`` returns) becomes the state
      of the best epoch.

  After training, ``best`` holds the best value, ``best_epoch`` its epoch and
  ``stopped_epoch`` the epoch training stopped after (None if it ran to the end).

  >>> stop = EarlyStopping(monitor="eval_accuracy", patience=2)
  >>> stop.mode
  'max'
  """

  def __init__(self, monitor: str = "eval_loss", *, patience: int = 0, mode: str = "auto",
               min_delta: float = 0.0, restore_best: bool = False):
    if mode not in ("min", "max", "auto"):
      raise ValueError(f"EarlyStopping: mode must be 'min', 'max' or 'auto', got {mode!r}")
    if int(patience) < 0 or min_delta < 0:
      raise ValueError(f"EarlyStopping: patience and min_delta must be >= 0, got {patience!r}, {min_delta!r}")
    if mode == "auto":
      mode = "max" if any(s in monitor for s in ("accuracy", "auc", "f1", "significance")) else "min"
    self.monitor, self.patience, self.mode = monitor, int(patience), mode
    self.min_delta, self.restore_best = float(min_delta), restore_best

  def on_train_begin(self, loop: Loop) -> None:
    self.best, self.best_epoch, self.best_state = None, None, None
    self.stopped_epoch, self._wait = None, 0

  def _improved(self, value: float) -> bool:
    if self.best is None:
      return True
    return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

  def on_epoch_end(self, loop: Loop, epoch: int, logs: dict) -> None:
    if self.monitor not in logs:
      raise ValueError(f"EarlyStopping: monitor {self.monitor!r} is not among this epoch's "
                       f"metrics {sorted(logs)}")
    value = _scalar(logs[self.monitor])
    if self._improved(value):
      self.best, self.best_epoch, self._wait = value, epoch, 0
      if self.restore_best:
        self.best_state = loop.state
      return
    self._wait += 1
    if self._wait > self.patience:
      loop.stop_training, self.stopped_epoch = True, epoch

  def on_train_end(self, loop: Loop) -> None:
    if self.restore_best and self.best_state is not None:
      loop.state = self.best_state


class CSVLogger(Callback):
  """Writes one row per epoch to the CSV file ``path``: ``epoch`` then every logged value.

  A metric of K runs takes columns ``name[0]`` .. ``name[K-1]``. With ``append=True``
  rows are added to an existing file (a resumed run) instead of replacing it. The file
  is flushed after every epoch.

  >>> import tempfile, pathlib
  >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
  >>> log, loop = CSVLogger(path), Loop(state=None, key=None, epochs=1)
  >>> log.on_train_begin(loop); log.on_epoch_end(loop, 0, {"train_loss": 0.5}); log.on_train_end(loop)
  >>> path.read_text().splitlines()
  ['epoch,train_loss', '0,0.5']
  """

  def __init__(self, path, *, append: bool = False):
    self.path, self.append = Path(path), append
    self._file, self._writer = None, None

  def on_train_begin(self, loop: Loop) -> None:
    self.path.parent.mkdir(parents=True, exist_ok=True)
    resuming = self.append and self.path.is_file() and self.path.stat().st_size > 0
    self._fields = None
    if resuming:
      with open(self.path, newline="") as f:
        self._fields = next(csv.reader(f), None)
    self._file = open(self.path, "a" if resuming else "w", newline="")

  def on_epoch_end(self, loop: Loop, epoch: int, logs: dict) -> None:
    row = {"epoch": epoch, **_columns(logs)}
    if self._writer is None:
      self._fields = self._fields or list(row)
      self._writer = csv.DictWriter(self._file, self._fields, extrasaction="ignore")
      if self._file.tell() == 0:
        self._writer.writeheader()
    self._writer.writerow(row)
    self._file.flush()

  def on_train_end(self, loop: Loop) -> None:
    if self._file is not None:
      self._file.close()
    self._file, self._writer = None, None


class TensorBoard(Callback):
  """Writes every logged value as a TensorBoard scalar per epoch, into ``logdir``.

  Event files are written with ``tensorboardX`` (no TensorFlow needed; view them with
  ``tensorboard --logdir DIR``). A metric of K runs is written as ``name/run_k``.

  >>> import tempfile, pathlib
  >>> logdir, loop = pathlib.Path(tempfile.mkdtemp()), Loop(state=None, key=None, epochs=1)
  >>> tb = TensorBoard(logdir)
  >>> tb.on_train_begin(loop); tb.on_epoch_end(loop, 0, {"train_loss": 0.5}); tb.on_train_end(loop)
  >>> len(list(logdir.glob("events.out.tfevents.*")))
  1
  """

  def __init__(self, logdir):
    self.logdir = Path(logdir)
    self._writer = None

  def on_train_begin(self, loop: Loop) -> None:
    try:
      from tensorboardX import SummaryWriter
    except ImportError:
      raise ImportError("TensorBoard needs tensorboardX: pip install tensorboardX") from None
    self._writer = SummaryWriter(str(self.logdir))

  def on_epoch_end(self, loop: Loop, epoch: int, logs: dict) -> None:
    for k, v in logs.items():
      a = np.asarray(v)
      if a.ndim == 0:
        self._writer.add_scalar(k, float(a), epoch)
      else:
        for i, x in enumerate(a.ravel()):
          self._writer.add_scalar(f"{k}/run_{i}", float(x), epoch)
    self._writer.flush()

  def on_train_end(self, loop: Loop) -> None:
    if self._writer is not None:
      self._writer.close()
    self._writer = None


def _summary(logs: dict) -> str:
  """``train_loss 0.1234  eval_accuracy 0.9876 ...`` (means over K runs)."""
  parts = [f"{k} {_scalar(v):.4g}" for k, v in logs.items() if k != "epoch_seconds"]
  if "epoch_seconds" in logs:
    parts.append(f"{_scalar(logs['epoch_seconds']):.1f} s")
  return "  ".join(parts)


class ProgressBar(Callback):
  """Shows progress: a bar over the epochs on a terminal, one plain line per epoch
  otherwise (a file, a pipe, a notebook's captured output), on ``file`` (default
  ``sys.stderr``). Values of K runs are shown as their mean.

  >>> import sys
  >>> bar, loop = ProgressBar(sys.stdout), Loop(state=None, key=None, epochs=2)
  >>> bar.on_train_begin(loop); bar.on_epoch_end(loop, 0, {"train_loss": 0.25, "epoch_seconds": 1.5})
  epoch 1/2  train_loss 0.25  1.5 s
  """

  def __init__(self, file=None):
    self.file = file
    self._bar = None

  def _stream(self):
    return self.file if self.file is not None else sys.stderr

  def on_train_begin(self, loop: Loop) -> None:
    stream = self._stream()
    if getattr(stream, "isatty", lambda: False)():
      from tqdm.auto import tqdm
      self._bar = tqdm(total=max(loop.epochs - loop.initial_epoch, 0), unit="epoch",
                       dynamic_ncols=True, file=stream)

  def on_epoch_end(self, loop: Loop, epoch: int, logs: dict) -> None:
    line = f"epoch {epoch + 1}/{loop.epochs}  {_summary(logs)}"
    if self._bar is not None:
      self._bar.update(1)
      self._bar.write(line, file=self._stream())
    else:
      print(line, file=self._stream(), flush=True)

  def on_train_end(self, loop: Loop) -> None:
    if self._bar is not None:
      self._bar.close()
    self._bar = None


def __getattr__(name: str):
  if name == "Checkpointer":  # defined in jaxphys.checkpoint (imported on first use)
    from jaxphys.checkpoint import Checkpointer
    return Checkpointer
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
