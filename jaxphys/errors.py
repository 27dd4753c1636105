"""The exceptions jaxphys raises for bad input. Each message is one line that names
the file or argument and what is wrong with it."""

__all__ = ["JaxphysError", "DataError", "ConfigMismatch", "OutputError", "RunLocked", "TrainingDiverged"]


class JaxphysError(Exception):
  """Base class of jaxphys' own errors."""


class DataError(JaxphysError, ValueError):
  """A data file or data set is missing, malformed or inconsistent."""


class ConfigMismatch(DataError):
  """A resumed run's settings differ from those stored with its checkpoint.

  ``differences``: setting name -> ``(stored, given)`` for every differing setting.
  """

  def __init__(self, message: str, differences=None):
    self.differences = dict(differences or {})
    super().__init__(message)


class OutputError(JaxphysError, OSError):
  """A file or folder could not be written (disk full, no permission, read-only file
  system, ...); the message names it. ``path``: the file or folder."""

  def __init__(self, message: str, path=None):
    self.path = path
    super().__init__(message)


class RunLocked(JaxphysError, RuntimeError):
  """Another process is running into the same output folder. ``directory``: the folder;
  ``pid``: the process holding its lock (None if unknown)."""

  def __init__(self, message: str, directory=None, pid=None):
    self.directory, self.pid = directory, pid
    super().__init__(message)


class TrainingDiverged(JaxphysError, FloatingPointError):
  """The training objective or the parameters stopped being finite.

  Attributes: ``epoch`` (0-based), ``step`` (the optimiser step, 1-based, at which the
  objective was first not finite; -1 if only the parameters were), ``runs`` (indices of
  the diverged runs of a vmapped sweep, or None) and ``history`` (the metrics of the
  epochs completed before, as :func:`jaxphys.fit` returns them).
  """

  def __init__(self, epoch: int, step: int, runs=None, history=None):
    self.epoch, self.step, self.runs, self.history = epoch, step, runs, history or {}
    where = f"epoch {epoch}, step {step}" if step >= 0 else f"epoch {epoch} (parameters)"
    which = f" in run(s) {', '.join(map(str, runs))}" if runs is not None else ""
    super().__init__(f"training diverged at {where}{which}: the loss is not finite; usual causes: "
                     "a learning rate too high, inputs not scaled (standardise features, pixels to "
                     "[0, 1]), or probabilities passed where the loss expects logits")
