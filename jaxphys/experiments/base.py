"""What every experiment shares: its settings as a dataclass, one command-line flag per
setting (generated from the dataclass, so none can be missed), and the checks that every
value passes before any work.

A setting is a dataclass field made with :func:`setting`, which records its help text and
its allowed range; :func:`check` enforces the ranges, :func:`make_parser` builds the flags
(``--help`` shows every default) and :func:`from_args` turns parsed flags back into a config.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import typing
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import optax

from jaxphys.mixed_precision import PRECISIONS

__all__ = ["setting", "BaseConfig", "TrainingConfig", "check", "make_parser", "from_args",
           "check_out", "check_memory", "UsageError", "ArgumentParser", "memory_bytes",
           "validation_split", "MAX_SEED"]

MAX_SEED = 2 ** 63 - 1  # jax.random.key takes a signed 64-bit seed
MAX_COUNT = 2 ** 31 - 1  # epochs, batch sizes, counts: int32 on device


def setting(default: Any, help: str, *, low: Optional[float] = None, high: Optional[float] = None,
            choices: Optional[Sequence[Any]] = None,
            low_open: bool = False, high_open: bool = False) -> Any:
  """A config field with its ``--help`` text and allowed range ``[low, high]`` (an end is
  excluded with ``low_open``/``high_open``; ``None``: unbounded). Floats must be finite.

  >>> @dataclasses.dataclass
  ... class C:
  ...   rate: float = setting(0.5, "dropout rate", low=0.0, high=1.0, high_open=True)
  >>> check(C(rate=1.0))
  Traceback (most recent call last):
  ValueError: rate must be in [0, 1), got 1.0
  """
  meta = dict(help=help, low=low, high=high, choices=choices, low_open=low_open,
              high_open=high_open)
  if isinstance(default, (list, tuple)):
    return dataclasses.field(default_factory=lambda: tuple(default), metadata=meta)
  return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class BaseConfig:
  """Settings of every experiment."""

  seed: int = setting(0, "random seed: initialisation, shuffling, the validation split",
                      low=0, high=MAX_SEED)
  epochs: int = setting(30, "training epochs", low=1, high=MAX_COUNT)
  batch_size: int = setting(128, "examples per training step (a batch larger than the "
                            "training data becomes one batch of all of it)", low=1, high=MAX_COUNT)
  quiet: bool = setting(False, "print nothing to stdout (the log file in --out still gets it all)")

  # Settings that do not change the computation: --resume accepts changes of these.
  HARMLESS = ("quiet", "resume", "checkpoint_every", "data_dir", "no_download", "tree_threads")


@dataclasses.dataclass
class TrainingConfig(BaseConfig):
  """Settings of an experiment that trains with validation, checkpoints and resumption."""

  lr: float = setting(1e-3, "peak learning rate", low=0.0, low_open=True)
  val_fraction: float = setting(0.1, "fraction of the training data held out for model "
                                "selection and early stopping", low=0.0, high=1.0,
                                low_open=True, high_open=True)
  patience: int = setting(0, "stop after this many epochs without a better validation "
                          "result (0: never stop early; the best epoch is kept either way)",
                          low=0, high=MAX_COUNT)
  checkpoint_every: int = setting(0, "checkpoint every N epochs and at the end (0: no "
                                  "checkpoints unless --resume)", low=0, high=MAX_COUNT)
  resume: bool = setting(False, "continue the run checkpointed in --out; refused if a setting "
                         "that changes the computation differs")
  precision: str = setting("float32", "dtype of the operands of the networks' matrix products "
                           "and convolutions, which sum in float32 (jaxphys.mixed_precision; "
                           "everything else stays float32); float32 unless given, so results do "
                           "not depend on the CPU (the library's default is bfloat16 for "
                           "convolutional networks and wide matrix products on CPUs with "
                           "AVX-512 BF16)",
                           choices=PRECISIONS)


OPTIMIZERS = ("adam", "sgd")


def optimizer(name: str, schedule: optax.Schedule) -> optax.GradientTransformation:
  """Adam (``"adam"``) or SGD with Nesterov momentum 0.9 (``"sgd"``) at ``schedule``'s
  rate, which the state carries (``optax.inject_hyperparams``) so that the history and
  the loggers record it.

  >>> float(optimizer("sgd", optax.constant_schedule(0.1)).init({"w": np.zeros(2)})
  ...       .hyperparams["learning_rate"])
  0.1
  """
  if name == "sgd":
    return optax.inject_hyperparams(optax.sgd, static_args=("momentum", "nesterov"))(
        learning_rate=schedule, momentum=0.9, nesterov=True)
  if name != "adam":
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
  return optax.inject_hyperparams(optax.adam)(learning_rate=schedule)


def check(config: Any) -> None:
  """Raises ``ValueError`` naming the first setting of ``config`` outside its range.

  >>> check(TrainingConfig(lr=float("nan")))
  Traceback (most recent call last):
  ValueError: lr must be a finite number, got nan
  """
  hints = typing.get_type_hints(type(config))
  for f in dataclasses.fields(config):
    value, meta = getattr(config, f.name), f.metadata
    if value is None or not meta or isinstance(value, bool):
      continue
    for v in (value if isinstance(value, tuple) else (value,)):
      if meta["choices"] is not None and v not in meta["choices"]:
        raise ValueError(f"{f.name} must be one of {', '.join(map(str, meta['choices']))}, got {v!r}")
      if isinstance(v, (int, float)):
        _check_number(f.name, v, meta, integer=_base_type(hints[f.name]) is int)


def _check_number(name: str, value, meta: dict, integer: bool) -> None:
  if integer and not float(value).is_integer():
    raise ValueError(f"{name} must be an integer, got {value!r}")
  if not math.isfinite(value):
    raise ValueError(f"{name} must be a finite number, got {value!r}")
  low, high = meta["low"], meta["high"]
  below = low is not None and (value <= low if meta["low_open"] else value < low)
  above = high is not None and (value >= high if meta["high_open"] else value > high)
  if below or above:
    left = "(" if meta["low_open"] else "["
    right = ")" if meta["high_open"] else "]"
    span = f"{left}{_g(low, '-inf')}, {_g(high, 'inf')}{right}"
    raise ValueError(f"{name} must be in {span}, got {value!r}")


def _g(bound, unbounded: str) -> str:
  if bound is None:
    return unbounded
  return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _base_type(hint):
  """``int`` for ``int`` and ``Optional[int]``; the element type of ``tuple[str, ...]``."""
  args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
  return args[0] if args else hint


def make_parser(config_cls: type, description: str, out_required: bool = True,
                defaults: Optional[dict] = None) -> argparse.ArgumentParser:
  """One flag per field of ``config_cls`` (``--batch-size`` for ``batch_size``), plus
  ``--out`` and ``--debug``; ``--help`` shows each default (``defaults`` overrides the
  shown value, e.g. "per model").

  >>> parser = make_parser(TrainingConfig, "demo")
  >>> parser.parse_args(["--batch-size", "64", "--out", "runs/x"]).batch_size
  64
  """
  parser = ArgumentParser(description=description)
  hints = typing.get_type_hints(config_cls)
  for f in dataclasses.fields(config_cls):
    if f.metadata:
      _add_flag(parser, f, hints[f.name], (defaults or {}).get(f.name))
  parser.add_argument("--out", required=out_required, default=None, metavar="DIR",
                      help="output folder (one run at a time; see jaxphys.runs)")
  parser.add_argument("--debug", action="store_true", default=False,
                      help="show the traceback of an input error")
  return parser


def _add_flag(parser, f, hint, shown) -> None:
  flag, meta = "--" + f.name.replace("_", "-"), f.metadata
  default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
  kind = _base_type(hint)
  help_text = meta["help"] + (f" (default: {shown})" if shown is not None else "")
  if kind is bool:
    parser.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=meta["help"])
    return
  kwargs = dict(type=kind, choices=meta["choices"], default=argparse.SUPPRESS,
                metavar=None if meta["choices"] else f.name.upper())
  if isinstance(default, tuple):
    kwargs["nargs"] = "+"
  if shown is None and "default" not in meta["help"]:
    help_text += f" (default: {' '.join(map(str, default)) if isinstance(default, tuple) else default})"
  parser.add_argument(flag, help=help_text, **kwargs)


def from_args(config_cls: type, args: argparse.Namespace, **defaults) -> Any:
  """The config of parsed ``args``: flags given on the command line, else ``defaults``
  (e.g. a model's preset), else the dataclass defaults; then :func:`check` ed.

  >>> flags = make_parser(TrainingConfig, "demo").parse_args(["--lr", "0.01", "--out", "x"])
  >>> from_args(TrainingConfig, flags, epochs=5).lr, from_args(TrainingConfig, flags, epochs=5).epochs
  (0.01, 5)
  """
  names = {f.name for f in dataclasses.fields(config_cls)}
  given = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in names}
  config = config_cls(**{**{k: v for k, v in defaults.items() if v is not None}, **given})
  check(config)
  return config


class UsageError(ValueError):
  """A flag that is unknown, missing or not of its type."""


class ArgumentParser(argparse.ArgumentParser):
  """``argparse`` whose bad flag or value raises :class:`UsageError` (one line, exit code 2
  under :func:`jaxphys.experiments.cli.run`) instead of printing the usage and exiting."""

  def error(self, message):
    raise UsageError(f"{message} (see --help)")


def check_out(out: Union[str, os.PathLike]) -> Path:
  """``out`` as a path, if a run can write there: not empty, not a file, writable (or its
  nearest existing parent is). Raises a one-line ``ValueError``.

  >>> check_out("")
  Traceback (most recent call last):
  ValueError: out must name a folder, got an empty path
  """
  if out is None or not str(out).strip():
    raise ValueError("out must name a folder, got an empty path")
  path = Path(out).expanduser().absolute()
  if path.exists() and not path.is_dir():
    raise ValueError(f"out: {path} exists and is not a folder")
  existing = next(p for p in (path, *path.parents) if p.exists())
  if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"out: cannot write into {existing}")
  return path


def memory_bytes() -> int:
  """The machine's physical memory, in bytes (``os.sysconf`` pages times page size).

  >>> memory_bytes() > 2 ** 20
  True
  """
  return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(needed: float, what: str) -> None:
  """Raises a one-line ``ValueError`` if ``needed`` bytes exceed half the machine's memory
  (the rest is for the program, the compiler and the system).

  >>> check_memory(2 ** 70, "a sweep")  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ValueError: a sweep would need about ... GiB; this machine has ... GiB (at most half of it may be used)
  """
  have = memory_bytes()
  if needed > have / 2:
    raise ValueError(f"{what} would need about {needed / 2 ** 30:,.1f} GiB; this machine has "
                     f"{have / 2 ** 30:,.1f} GiB (at most half of it may be used)")


def validation_split(n: int, fraction: float, seed: int,
                     labels: Optional[np.typing.ArrayLike] = None) -> tuple[np.ndarray, np.ndarray]:
  """Indices ``(train, valid)`` of ``n`` examples, ``valid`` a random ``fraction`` of them
  (at least one; stratified by ``labels`` when given, so every class is represented).

  >>> train, valid = validation_split(10, 0.2, seed=0)
  >>> len(train), len(valid), sorted(set(train) | set(valid)) == list(range(10))
  (8, 2, True)
  """
  n_valid = int(round(n * fraction))
  if n_valid < 1 or n - n_valid < 1:
    raise ValueError(f"val_fraction {fraction:g} of {n} training examples leaves "
                     f"{n_valid} for validation and {n - n_valid} for training; each needs at least 1")
  rng = np.random.default_rng(seed)
  if labels is None:
    order = rng.permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])
  # Stratified: every class gives the same fraction (to rounding) of its examples.
  order = rng.permutation(n)
  ranks = np.empty(n)
  for c in np.unique(labels):
    members = order[np.asarray(labels)[order] == c]
    ranks[members] = (np.arange(len(members)) + rng.random()) / len(members)
  valid = np.argsort(ranks, kind="stable")[:n_valid]
  mask = np.zeros(n, bool)
  mask[valid] = True
  return np.nonzero(~mask)[0], np.nonzero(mask)[0]
