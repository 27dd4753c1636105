"""The command-line contract of the experiments: bad input is one line on stderr and exit
code 2; results record the software and the device they came from."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import shlex
import sys
from typing import Callable, Optional, Sequence

from jaxphys.errors import JaxphysError

# What a user's input can cause; anything else is a bug and keeps its traceback.
USER_ERRORS = (JaxphysError, ValueError, OSError)


class ArgumentParser(argparse.ArgumentParser):
  """``argparse`` with the same contract: a bad flag or value is one line, exit code 2."""

  def error(self, message):
    self.exit(2, f"error: {message} (see --help)\n")

  def add_run_arguments(self) -> None:
    """The flags every experiment shares: checkpoints, output directory, verbosity, and
    ``--debug`` (read by :func:`run`)."""
    self.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                      help="checkpoint every N epochs and at the end of training (default: none)")
    self.add_argument("--resume", action="store_true",
                      help="continue from the checkpoints in --out (same seed and settings)")
    self.add_argument("--out", required=True, help="output directory")
    self.add_argument("--quiet", action="store_true", help="print nothing to stdout")
    self.add_argument("--debug", action="store_true", help="show the traceback of an input error")


def run(main: Callable, argv: Optional[Sequence[str]] = None) -> int:
  """Calls ``main(argv)``; a user error prints ``error: <first line>`` and returns 2
  (with ``--debug`` in ``argv`` it is re-raised with its traceback); success returns 0."""
  args = list(sys.argv[1:] if argv is None else argv)
  try:
    main(args)
  except USER_ERRORS as e:
    if "--debug" in args:
      raise
    message = str(e).strip().splitlines()
    print(f"error: {message[0] if message else type(e).__name__}", file=sys.stderr)
    return 2
  return 0


def check_config(config, positive=(), not_negative=()) -> None:
  """Rejects impossible settings of ``config`` (a dataclass) in one line, before anything
  is loaded or written: each of ``positive`` must be at least 1 (or None), each of
  ``not_negative`` at least 0."""
  for name in positive:
    value = getattr(config, name)
    if value is not None and value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value}")
  for name in not_negative:
    if getattr(config, name) < 0:
      raise ValueError(f"{name} must not be negative, got {getattr(config, name)}")


def failure(error, config, **context) -> dict:
  """The results record of a run stopped by ``error`` (a
  :class:`~jaxphys.errors.TrainingDiverged`): message, where, ``config`` (a dataclass)
  and the environment; ``context`` adds run-specific fields."""
  import dataclasses

  return {"failure": str(error), **context, "epoch": error.epoch, "step": error.step,
          "config": dataclasses.asdict(config), "environment": environment()}


def environment() -> dict:
  """The versions, device and command line of this run, for a results file."""
  import jax

  versions = {name: importlib.metadata.version(name)
              for name in ("jax", "jaxlib", "flax", "optax", "numpy", "jaxphys")}
  return {**versions, "python": platform.python_version(), "device": str(jax.devices()[0]),
          "machine": platform.machine(), "command": shlex.join(sys.argv)}
