"""``jaxphys.metrics.roc_auc`` and ``roc_curve`` on millions of scores against scikit-learn.

``roc_auc`` is timed as called on concrete arrays (NumPy's sort on the CPU) and inside
``jax.jit`` (XLA's sort). Scores are those of a classifier of a SUSY-sized test set (Gaussian scores, shifted for
the signal, rounded to 1e-4 so that ties occur as with real network outputs). Prints
the best of ``--repeats`` times (after one compiling call) and the largest difference.

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


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--events", type=int, default=5_000_000)
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args(argv)
  from sklearn import __version__ as sk_version
  from sklearn.metrics import roc_auc_score
  from sklearn.metrics import roc_curve as sk_roc_curve

  rng = np.random.default_rng(0)
  y = (rng.random(args.events) < 0.458).astype(np.int32)
  s = np.round(rng.normal(size=args.events) + 0.6 * y, 4).astype(np.float32)
  ys, ss = jax.device_put((y, s))
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, scikit-learn {sk_version}; "
        f"{args.events:,} scores, {len(np.unique(s)):,} distinct")

  t_ours, a_ours = _best(lambda: float(metrics.roc_auc(ys, ss)), args.repeats)
  t_jit, a_jit = _best(lambda: float(jax.jit(metrics.roc_auc)(ys, ss)), args.repeats)
  t_sk, a_sk = _best(lambda: roc_auc_score(y, s), args.repeats)
  t_curve, (f1, t1, _) = _best(lambda: metrics.roc_curve(ys, ss), args.repeats)
  t_skcurve, (f2, t2, _) = _best(lambda: sk_roc_curve(y, s), args.repeats)
  curve_diff = max(np.abs(f1 - f2).max(), np.abs(t1 - t2).max()) if f1.shape == f2.shape else np.inf
  print(f"roc_auc:   jaxphys {t_ours:6.3f} s, scikit-learn {t_sk:6.3f} s -> {t_sk / t_ours:.2f}x; "
        f"AUC {a_ours:.7f} vs {a_sk:.7f} (difference {abs(a_ours - a_sk):.1e})")
  print(f"roc_auc inside jit (XLA's sort): {t_jit:6.3f} s -> {t_sk / t_jit:.2f}x of scikit-learn; "
        f"difference {abs(a_jit - a_sk):.1e}")
  print(f"roc_curve: jaxphys {t_curve:6.3f} s, scikit-learn {t_skcurve:6.3f} s -> {t_skcurve / t_curve:.2f}x; "
        f"{len(f1):,} vs {len(f2):,} points, largest difference {curve_diff:.1e}")
  return {"roc_auc_speedup": t_sk / t_ours, "roc_auc_jit_speedup": t_sk / t_jit, "roc_curve_speedup": t_skcurve / t_curve,
          "auc_difference": abs(a_ours - a_sk), "curve_difference": float(curve_diff)}


if __name__ == "__main__":
  main()
