"""``jaxphys.metrics`` on millions of scores against scikit-learn, in the same run.

Scores are those of a classifier of a SUSY-sized test set (Gaussian scores, shifted for
the signal, rounded to 1e-4 so that ties occur as with real network outputs). Cases:
float32 scores (the packed-word NumPy sort), float64 scores and float32 scores with
per-event weights (NumPy's stable arg-sort), and ``roc_auc`` inside ``jax.jit`` (XLA's
sort). Prints the best of ``--repeats`` times (after one warm-up call), the ratio
scikit-learn / jaxphys (above 1: jaxphys is faster) and the largest difference.

    python benchmarks/metrics.py [--events 5000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from jaxphys import metrics


def _best(fn, repeats: int):
  fn()  # compile / warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - start)
  return min(times), out


def _row(name, ours, theirs, diff, note=""):
  print(f"{name:<34} jaxphys {ours:6.3f} s, scikit-learn {theirs:6.3f} s -> {theirs / ours:5.2f}x; "
        f"largest difference {diff:.1e}{note}")
  return theirs / ours


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--events", type=int, default=5_000_000)
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args(argv)
  from sklearn import __version__ as sk_version
  from sklearn.metrics import roc_auc_score, roc_curve

  rng = np.random.default_rng(0)
  y = (rng.random(args.events) < 0.458).astype(np.int32)
  s64 = np.round(rng.normal(size=args.events) + 0.6 * y, 4)
  s32 = s64.astype(np.float32)
  w = rng.uniform(0.5, 1.5, args.events)
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, numpy {np.__version__}, "
        f"scikit-learn {sk_version}; {args.events:,} scores, {len(np.unique(s32)):,} distinct")
  ratios = {}
  for name, s, sw in (("float32", s32, None), ("float64", s64, None), ("float32, weighted", s32, w)):
    t_ours, a_ours = _best(lambda: metrics.roc_auc(y, s, sample_weight=sw), args.repeats)
    t_sk, a_sk = _best(lambda: roc_auc_score(y, s, sample_weight=sw), args.repeats)
    ratios[f"roc_auc {name}"] = _row(f"roc_auc ({name})", t_ours, t_sk, abs(a_ours - a_sk))
    t_ours, c_ours = _best(lambda: metrics.roc_curve(y, s, sample_weight=sw), args.repeats)
    t_sk, c_sk = _best(lambda: roc_curve(y, s, sample_weight=sw), args.repeats)
    same = all(a.shape == b.shape for a, b in zip(c_ours, c_sk))
    diff = max(np.abs(a - b).max() for a, b in zip(c_ours[:2], c_sk[:2])) if same else np.inf
    ratios[f"roc_curve {name}"] = _row(f"roc_curve ({name})", t_ours, t_sk, diff,
                                       f" ({len(c_ours[0]):,} vs {len(c_sk[0]):,} points)")
  ys, ss = jax.device_put((y, s32))
  auc_jit = jax.jit(metrics.roc_auc)
  t_jit, a_jit = _best(lambda: float(auc_jit(ys, ss)), args.repeats)
  t_sk, a_sk = _best(lambda: roc_auc_score(y, s32), args.repeats)
  ratios["roc_auc jit float32"] = _row("roc_auc inside jit (XLA's sort)", t_jit, t_sk, abs(a_jit - a_sk))
  return ratios


if __name__ == "__main__":
  main()
