"""Throughput of :func:`jaxphys.physics.simulate_susy` (events per second after the lepton
selection, all 18 features), against the same code run op by op (``jax.disable_jit``)
and, with ``--against REV``, against the simulator of git revision ``REV`` (its whole
``jaxphys/physics`` package: simulator, features, MT2, kinematics) loaded in the same
process (alternating calls, so that other jobs' load hits both alike).

Wall-clock rates need a quiet machine; the process CPU time per 1,000,000 events
(``time.process_time``, all threads) is printed too, and is steadier on shared cores.

    python benchmarks/simulator.py [--events 1000000] [--repeats 3] [--against 6811441]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax

from jaxphys.physics import simulate_susy


def _measure(fn):
  wall, cpu = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - wall, time.process_time() - cpu


def _module_at(rev: str):
  """``jaxphys/physics`` of git revision ``rev``, imported as a package of another name
  (its modules' imports of ``jaxphys.physics`` renamed), so that the comparison includes
  that revision's features, MT2 and kinematics."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  git = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True,
                                  text=True).stdout
  name = f"_jaxphys_physics_at_{rev}".replace("~", "_").replace("^", "_")
  folder = os.path.join(tempfile.mkdtemp(), name)
  os.makedirs(folder)
  for path in git("ls-tree", "--name-only", f"{rev}:jaxphys/physics").split():
    if path.endswith(".py"):
      with open(os.path.join(folder, path), "w") as f:
        f.write(git("show", f"{rev}:jaxphys/physics/{path}").replace("jaxphys.physics", name))
  spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                submodule_search_locations=[folder])
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--events", type=int, default=1_000_000)
  ap.add_argument("--baseline-events", type=int, default=20_000)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--against", default=None, help="a git revision whose jaxphys.physics is timed alternately")
  args = ap.parse_args(argv)
  print(f"jax {jax.__version__} on {jax.devices()[0]}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.1f}")

  versions = {"this version": simulate_susy}
  if args.against:
    versions[f"at {args.against}"] = _module_at(args.against).simulate_susy
  start = time.perf_counter()
  simulate_susy(jax.random.key(0), 1000)  # compiles both classes
  compile_s = time.perf_counter() - start
  for fn in versions.values():
    fn(jax.random.key(1), args.events)  # warm: compiled, tables built
  runs = {name: [] for name in versions}
  for _ in range(args.repeats):
    for name, fn in versions.items():
      runs[name].append(_measure(lambda: fn(jax.random.key(1), args.events)))

  with jax.disable_jit():
    base_s, _ = _measure(lambda: simulate_susy(jax.random.key(1), args.baseline_events,
                                               chunk_size=args.baseline_events))
  base_rate = args.baseline_events / base_s

  print(f"compile (first call): {compile_s:.1f} s")
  per_million = lambda s: s * 1e6 / args.events
  for name, r in runs.items():
    wall, cpu = min(w for w, _ in r), min(c for _, c in r)
    print(f"simulate_susy {name}: {args.events / wall:12,.0f} events/s (best of {args.repeats}); "
          f"CPU s per 1M events: {' '.join(f'{per_million(c):.2f}' for _, c in r)} (best {per_million(cpu):.2f})")
  wall = min(w for w, _ in runs["this version"])
  rate = args.events / wall
  print(f"simulate_susy, op by op:{base_rate:12,.0f} events/s  ({args.baseline_events:,} events)")
  print(f"ratio jit / op-by-op: {rate / base_rate:.1f}x; target 1,000,000 events/s: {rate / 1e6:.2f}x")
  if args.against:
    cpu_of = lambda name: min(c for _, c in runs[name])
    print(f"CPU time per event, this version / {args.against}: "
          f"{cpu_of('this version') / cpu_of(f'at {args.against}'):.2f}")
  return {"events_per_second": rate, "baseline_events_per_second": base_rate}


if __name__ == "__main__":
  main()
