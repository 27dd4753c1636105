"""The issue's separation target: LightGBM on default simulated events, low-level (8) and
all 18 features, AUC on a held-out fifth.

    PYTHONPATH=. python docs/physics/toy_auc.py [--events 300000] [--rounds 300]
"""

from __future__ import annotations

import argparse

import jax
import lightgbm as lgb
from sklearn.metrics import roc_auc_score

from jaxphys.physics import simulate_susy


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--events", type=int, default=300_000)
  ap.add_argument("--rounds", type=int, default=300)
  ap.add_argument("--threads", type=int, default=1)
  args = ap.parse_args(argv)
  x, y = simulate_susy(jax.random.key(0), args.events)
  n_train = int(0.8 * args.events)
  auc = {}
  for name, cols in (("low", slice(0, 8)), ("all", slice(0, 18))):
    model = lgb.LGBMClassifier(n_estimators=args.rounds, num_leaves=63, learning_rate=0.1,
                               n_jobs=args.threads, random_state=0, verbose=-1)
    model.fit(x[:n_train, cols], y[:n_train])
    auc[name] = roc_auc_score(y[n_train:], model.predict_proba(x[n_train:, cols])[:, 1])
    print(f"{name}: AUC {auc[name]:.4f}  ({n_train:,} training / {args.events - n_train:,} test events, "
          f"{args.rounds} rounds, 63 leaves)")
  return auc


if __name__ == "__main__":
  main()
