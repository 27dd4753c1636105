"""What a run prints, and the same lines in its log file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from jaxphys.callbacks import Callback

__all__ = ["Console", "EpochLines"]


class Console:
  """Prints lines to stdout (unless ``quiet``) and appends them to ``log`` (a path).

  >>> import tempfile, pathlib
  >>> log = pathlib.Path(tempfile.mkdtemp()) / "log.txt"
  >>> say = Console(quiet=True, log=log)
  >>> say("epoch 1"); say.close(); log.read_text()
  'epoch 1\\n'
  """

  def __init__(self, quiet: bool = False, log: Optional[Path] = None):
    self.quiet = quiet
    self._file = open(log, "a", encoding="utf-8") if log is not None else None

  def __call__(self, *parts, to_console: bool = True) -> None:
    line = " ".join(str(p) for p in parts)
    if to_console and not self.quiet:
      print(line, flush=True)
    if self._file is not None:
      self._file.write(line + "\n")
      self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None


def _format(value) -> str:
  """A number, or the mean of a vmapped run's numbers."""
  v = np.asarray(value, dtype=np.float64).ravel()
  return f"{v[0]:.4g}" if v.size == 1 else f"{v.mean():.4g} (mean of {v.size})"


class EpochLines(Callback):
  """One line per epoch (``prefix``, the epoch and every logged number) into the console's
  log file; on the console too when ``echo`` (no progress bar is shown there)."""

  def __init__(self, say: Console, prefix: str = "", echo: bool = False):
    self.say, self.prefix, self.echo = say, prefix, echo

  def on_epoch_end(self, loop, epoch: int, logs: dict) -> None:
    values = "  ".join(f"{k} {_format(v)}" for k, v in logs.items() if _is_number(v))
    self.say(f"{self.prefix}epoch {epoch + 1}/{loop.epochs}  {values}", to_console=self.echo)


def _is_number(v) -> bool:
  try:
    return np.asarray(v).dtype.kind in "iuf"
  except (TypeError, ValueError):
    return False
