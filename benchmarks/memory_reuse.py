"""The trainer's CPU memory setting (``jaxphys.train._backend.keep_freed_memory``) off
and on, each run in a process of its own, in one run.

    python benchmarks/memory_reuse.py [--cases cnn mlp susy_b100 susy_b1024]
        [--precision {default,float32,bfloat16} ...] [--rounds 2] [--epochs 3]

Each case of ``benchmarks/training.py`` trains with jaxphys alone in a fresh process, as
``training.py --isolated`` runs it (its worker), with ``JAXPHYS_KEEP_MEMORY=0`` (glibc's
``malloc`` as it is) and ``1`` (the default), the two settings taking turns, the order
reversed every round. Prints examples per second over the median of all timed epochs of
each setting, each process's own figure, the ratio on / off, and the median of the timed
epochs' minor page faults (memory the kernel had to hand the process afresh).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _turns  # noqa: E402 (beside this script)


def _worker(case: str, precision: str, epochs: int, setting: str) -> dict:
  """``training.py``'s jaxphys worker in a process of its own: its epochs' seconds."""
  env = dict(os.environ, JAXPHYS_KEEP_MEMORY=setting)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "result.json")
    subprocess.run([sys.executable, os.path.join(HERE, "training.py"), "--worker", "jaxphys", "--cases", case,
                    "--precision", precision, "--epochs", str(epochs), "--json", path], env=env, check=True)
    with open(path) as f:
      return json.load(f)


def main(argv=None) -> dict:
  import training as T
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--cases", nargs="+", default=["cnn", "mlp", "susy_b100", "susy_b1024"],
                  choices=[c for c in T.CASES])
  ap.add_argument("--precision", nargs="+", default=["float32"], choices=["default", "float32", "bfloat16"])
  _turns.add_options(ap)
  args = ap.parse_args(argv)
  _turns.check_options(ap, args)
  results = {}
  for case in args.cases:
    examples = T.case_examples(T.CASES[case], 1.0)  # as the worker trains (its default scale)
    for precision in args.precision:
      runs = _turns.by_turns(("0", "1"), args.rounds, lambda s: _worker(case, precision, args.epochs, s))
      speed = {s: examples / statistics.median([t for one in rs for t in one["seconds"]]) for s, rs in runs.items()}
      results[f"{case} {precision}"] = speed
      each = {s: ", ".join(f"{one['examples_per_second']:,.0f}" for one in rs) for s, rs in runs.items()}
      faults = {s: statistics.median([f for one in rs for f in one["minor_faults"]]) for s, rs in runs.items()}
      print(f"{case} ({precision}): JAXPHYS_KEEP_MEMORY=0 {speed['0']:,.0f} /s (per process {each['0']}), "
            f"=1 {speed['1']:,.0f} /s (per process {each['1']}), on / off {speed['1'] / speed['0']:.2f}x; "
            f"minor page faults per epoch, median: {faults['0']:,.0f} off, {faults['1']:,.0f} on", flush=True)
  return results


if __name__ == "__main__":
  main()
