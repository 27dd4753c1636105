"""The ``jaxphys`` command (``jaxphys quickstart|mnist|susy [flags]``) and the contract of
every experiment's command line: bad input is one line on stderr, ``error: ...``, and exit
code 2; ``--debug`` shows its traceback instead."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Optional, Sequence

from jaxphys.errors import JaxphysError

__all__ = ["main", "run", "run_experiment", "EXPERIMENTS", "USER_ERRORS"]

# What a user's input or machine can cause; anything else is a bug and keeps its traceback.
USER_ERRORS = (JaxphysError, ValueError, OSError, MemoryError, OverflowError)

EXPERIMENTS = {
    "quickstart": "the course's first steps on scikit-learn's 8x8 digits (no download)",
    "mnist": "the MNIST ladder: softmax regression, MLP, CNN, ResNet, augmentation",
    "susy": "the SUSY search: logistic regression, boosted trees and networks",
}


def run(body: Callable[[list], object], argv: Optional[Sequence[str]] = None) -> int:
  """Calls ``body(argv)``; returns 0, or 2 after printing a user error's first line
  (with ``--debug`` in ``argv`` the error is raised with its traceback).

  >>> def body(args):
  ...   raise ValueError("lr must be positive")
  >>> run(body, ["--lr", "-1"])  # prints "error: lr must be positive" on stderr
  2
  """
  args = list(sys.argv[1:] if argv is None else argv)
  try:
    body(args)
  except USER_ERRORS as e:
    if "--debug" in args:
      raise
    lines = str(e).strip().splitlines()
    print(f"error: {lines[0] if lines else type(e).__name__}", file=sys.stderr)
    return 2
  return 0


def run_experiment(parser: argparse.ArgumentParser, config_cls: type, train_and_evaluate: Callable,
                   argv: Optional[Sequence[str]] = None) -> int:
  """Parses ``argv`` with ``parser`` (made by :func:`~jaxphys.experiments.base.make_parser`),
  checks the config and calls ``train_and_evaluate(config, out)`` under :func:`run`.

  >>> from jaxphys.experiments import base
  >>> parser = base.make_parser(base.TrainingConfig, "demo")
  >>> run_experiment(parser, base.TrainingConfig, lambda config, out: None, ["--out", "x"])
  0
  >>> run_experiment(parser, base.TrainingConfig, lambda config, out: None, ["--epochs", "0", "--out", "x"])
  2
  """
  from jaxphys.experiments import base

  def body(args):
    flags = parser.parse_args(args)
    train_and_evaluate(base.from_args(config_cls, flags), flags.out)

  return run(body, argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """``jaxphys <experiment> [flags]``: runs ``jaxphys.experiments.<experiment>.main``.

  >>> main(["--help"])  # doctest: +ELLIPSIS
  usage: jaxphys {quickstart,mnist,susy} [flags]
  ...
  0
  """
  args = list(sys.argv[1:] if argv is None else argv)
  if not args or args[0] in ("-h", "--help"):
    print(_usage())
    return 0 if args else 2
  name, rest = args[0], args[1:]
  if name not in EXPERIMENTS:
    print(f"error: unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}", file=sys.stderr)
    return 2
  module = importlib.import_module(f"jaxphys.experiments.{name}")
  return module.main(rest, prog=f"jaxphys {name}")


def _usage() -> str:
  lines = [f"usage: jaxphys {{{','.join(EXPERIMENTS)}}} [flags]", "",
           "Runs one of jaxphys' experiments; `jaxphys <experiment> --help` lists its flags "
           "and their defaults.", ""]
  lines += [f"  {name:11s} {what}" for name, what in EXPERIMENTS.items()]
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
