"""Throughput of :func:`jaxphys.physics.simulate_susy` (events per second after the lepton
selection, all 18 features), against the same code run op by op (``jax.disable_jit``).

    python benchmarks/simulator.py [--events 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax

from jaxphys.physics import simulate_susy


def _best(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--events", type=int, default=1_000_000)
  ap.add_argument("--baseline-events", type=int, default=20_000)
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args(argv)
  print(f"jax {jax.__version__} on {jax.devices()[0]}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")

  start = time.perf_counter()
  simulate_susy(jax.random.key(0), 1000)  # compiles both classes
  compile_s = time.perf_counter() - start
  seconds = _best(lambda: simulate_susy(jax.random.key(1), args.events), args.repeats)
  rate = args.events / seconds

  with jax.disable_jit():
    base_s = _best(lambda: simulate_susy(jax.random.key(1), args.baseline_events,
                                         chunk_size=args.baseline_events), 1)
  base_rate = args.baseline_events / base_s

  print(f"compile (first call): {compile_s:.1f} s")
  print(f"simulate_susy, jit:     {rate:12,.0f} events/s  ({args.events:,} events in {seconds:.2f} s, best of {args.repeats})")
  print(f"simulate_susy, op by op:{base_rate:12,.0f} events/s  ({args.baseline_events:,} events)")
  print(f"ratio jit / op-by-op: {rate / base_rate:.1f}x; target 1,000,000 events/s: {rate / 1e6:.2f}x")
  return {"events_per_second": rate, "baseline_events_per_second": base_rate}


if __name__ == "__main__":
  main()
