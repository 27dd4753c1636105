"""Speed and peak memory of :func:`jaxphys.data.load_susy` on a file of the real size
(5,000,000 rows, written from the simulator in the UCI format): parsing (pyarrow's CSV
reader), the first load with ``cache_dir`` (parse, validate, hash the file, write the
``.npy``) and a cached load, against ``pandas.read_csv`` with default options (when
pandas is installed) and ``numpy.loadtxt``.

    python benchmarks/susy_loader.py [--rows 5000000] [--dir /tmp/jaxphys_susy_bench]

The file repeats a block of ``--unique-rows`` simulated events (writing 5,000,000
formatted rows would take minutes; parsing cost does not depend on repetition). Each
load runs in a fresh subprocess; its peak resident memory (``ru_maxrss``) minus its
resident memory just before loading is compared with the size of the float32 result.
The ``numpy.loadtxt`` baseline reads the first ``--baseline-rows`` rows and is
extrapolated linearly.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
from jaxphys.data import load_susy
import pyarrow.csv  # imported before measuring: imports are not the load
path, how, rows, cache = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
startup = 0.0
if how == "pandas":
  start = time.perf_counter()
  import pandas as pd
  startup = time.perf_counter() - start
rss = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
before = rss()
start = time.perf_counter()
if how == "parse":
  x, y = load_susy(path)
elif how in ("first", "cached"):
  x, y = load_susy(path, cache_dir=cache)
elif how == "pandas":
  t = pd.read_csv(path, header=None).to_numpy(np.float32)
  x, y = t[:, 1:], t[:, 0].astype(np.int32)
else:
  t = np.loadtxt(path, delimiter=",", dtype=np.float32, max_rows=rows)
  x, y = t[:, 1:], t[:, 0].astype(np.int32)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rows": len(x), "extra_kib": peak - before, "array_bytes": x.nbytes,
                  "startup": startup}))
"""


def _run(path: Path, how: str, rows: int, cache: Path) -> dict:
  out = subprocess.run([sys.executable, "-c", _CHILD, str(path), how, str(rows), str(cache)],
                       check=True, capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--rows", type=int, default=5_000_000)
  ap.add_argument("--baseline-rows", type=int, default=200_000)
  ap.add_argument("--dir", default="/tmp/jaxphys_susy_bench")
  ap.add_argument("--unique-rows", type=int, default=250_000)
  args = ap.parse_args(argv)
  import shutil

  import jax

  from jaxphys.data import write_susy
  from jaxphys.physics import simulate_susy

  if args.rows % args.unique_rows:
    raise SystemExit("--rows must be a multiple of --unique-rows")
  path = Path(args.dir) / f"SUSY_{args.rows}.csv"
  if not path.exists():
    start = time.perf_counter()
    x, y = simulate_susy(jax.random.key(0), args.unique_rows, rescale=True)
    block = write_susy(Path(args.dir) / "block.csv", x, y).read_bytes()
    with open(path, "wb") as f:
      for _ in range(args.rows // args.unique_rows):
        f.write(block)
    print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s")
  cache = Path(args.dir) / "cache"
  shutil.rmtree(cache, ignore_errors=True)
  results = {how: _run(path, how, args.rows, cache) for how in ("parse", "first", "cached")}
  import importlib.util
  if importlib.util.find_spec("pandas"):
    results["pandas"] = _run(path, "pandas", args.rows, cache)
  else:
    print("pandas is not installed: no pandas.read_csv baseline")
  base = _run(path, "loadtxt", args.baseline_rows, cache)
  labels = {"parse": "load_susy (pyarrow, validated)", "first": "load_susy, first with cache_dir",
            "cached": "load_susy, cached", "pandas": "pandas.read_csv"}
  for how, r in results.items():
    print(f"{labels[how]:34s} {r['rows']:,} rows in {r['seconds']:6.2f} s = {r['rows'] / r['seconds']:>12,.0f} rows/s;"
          f" peak memory {r['extra_kib'] / 2**20:.2f} GiB = {r['extra_kib'] * 1024 / r['array_bytes']:.2f}x the float32 array")
  base_rate = base["rows"] / base["seconds"]
  print(f"numpy.loadtxt: {base['rows']:,} rows in {base['seconds']:.1f} s = {base_rate:,.0f} rows/s "
        f"({args.rows:,} rows: about {args.rows / base_rate:.0f} s)")


if __name__ == "__main__":
  main()
