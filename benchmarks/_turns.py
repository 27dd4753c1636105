"""Two settings of one process-wide switch, each run in fresh processes, by turns: the
command-line options and the loop that ``memory_reuse.py`` and ``shared_heap.py`` share."""

from __future__ import annotations

import argparse
from typing import Callable


def add_options(ap: argparse.ArgumentParser) -> None:
  """``--rounds`` and ``--epochs`` (timed epochs after one warm-up)."""
  ap.add_argument("--rounds", type=int, default=2)
  ap.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")


def check_options(ap: argparse.ArgumentParser, args) -> None:
  """Exits with a usage error (code 2) unless both are positive."""
  if args.rounds < 1 or args.epochs < 1:
    ap.error("--rounds and --epochs must be positive")


def by_turns(settings: tuple, rounds: int, run: Callable[[str], dict]) -> dict:
  """``{setting: [run(setting), ...]}``: every round runs each setting once, the order
  reversed every other round."""
  runs = {s: [] for s in settings}
  for r in range(rounds):
    for setting in settings if r % 2 == 0 else settings[::-1]:
      runs[setting].append(run(setting))
  return runs
