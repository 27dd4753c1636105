"""Quickstart: the course's first steps on real data that needs no download.

scikit-learn ships 1,797 real 8x8 handwritten digits (UCI optdigits test set). On a
fixed 75/25 split this trains, with the same jaxphys trainer and metrics throughout:

1. logistic regression, one digit against the rest, with its working point;
2. softmax regression with a vmapped sweep over the L2 strength (one compiled run);
3. a fully connected network and a small CNN.

    python experiments/quickstart.py [--seed S] [--epochs N] [--quiet]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxphys as jp


def load_digits(seed: int):
  """Real 8x8 digits as ``(n, 8, 8, 1)`` float32 in [0, 1] and int32 labels, split 75/25."""
  from sklearn.datasets import load_digits as sk_digits

  d = sk_digits()
  x = (d.images / 16.0).astype(np.float32)[..., None]
  y = d.target.astype(np.int32)
  order = np.asarray(jax.random.permutation(jax.random.key(seed), len(x)))
  cut = int(0.75 * len(x))
  return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])


def train(model, loss, x, y, *, seed, epochs, lr, batch_size=64, regularizer=None, strengths=None,
          progress=True):
  """Trains one run (or one per entry of ``strengths``, vmapped) and returns params, seconds."""
  tx = optax.adam(lr)
  step = jp.make_train_step(model.apply, loss, tx, regularizer)
  init_key, fit_key = jax.random.split(jax.random.key(seed))
  if strengths is None:
    state = jp.create_train_state(init_key, model, tx, x)
  else:
    keys = jax.random.split(init_key, len(strengths))
    state = jp.create_train_states(keys, model, tx, x, reg_strength=jnp.asarray(strengths))
  start = time.perf_counter()
  state, hist = jp.fit(state, step, x, y, key=fit_key, epochs=epochs, batch_size=batch_size,
                       progress=progress)
  return state.params, time.perf_counter() - start


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--epochs", type=int, default=40)
  ap.add_argument("--quiet", action="store_true", help="print nothing")
  args = ap.parse_args(argv)
  say = (lambda *a: None) if args.quiet else print
  progress = not args.quiet
  (x, y), (xt, yt) = load_digits(args.seed)
  say(f"digits: {len(x)} train / {len(xt)} test, {x.shape[1:]} pixels, device {jax.devices()[0]}")
  results = {}

  # 1. Logistic regression: "is it a 3?", then choose a working point.
  target = 3
  model = jp.LogisticRegression()
  params, secs = train(model, jp.binary_cross_entropy, x, (y == target).astype(np.int32),
                       seed=args.seed, epochs=args.epochs, lr=0.05, regularizer=jp.l2,
                       strengths=None, progress=progress)
  p = jax.nn.sigmoid(jp.predict(model.apply, params, xt))
  yb = (yt == target).astype(np.int32)
  wp = jp.working_point(yb, p, target_tpr=0.95)
  results["logistic"] = {
      "accuracy": float(jp.accuracy(yb, p)), "precision": float(jp.precision(yb, p)),
      "recall": float(jp.recall(yb, p)), "auc": float(jp.roc_auc(yb, p)),
      "threshold_at_tpr_0.95": float(wp.threshold), "fpr_at_tpr_0.95": float(wp.fpr),
  }
  say(f"\n[1] logistic regression, '{target}' vs rest: accuracy {results['logistic']['accuracy']:.4f}"
      f"  precision {results['logistic']['precision']:.3f}  recall {results['logistic']['recall']:.3f}"
      f"  AUC {results['logistic']['auc']:.4f}")
  say(f"    working point TPR >= 0.95: threshold {wp.threshold:.3f}, TPR {wp.tpr:.3f}, FPR {wp.fpr:.4f}")

  # 2. Softmax regression, four L2 strengths trained together as one vmapped program.
  strengths = [0.0, 1e-4, 1e-3, 1e-2]
  model = jp.SoftmaxRegression(10)
  params, secs = train(model, jp.softmax_cross_entropy, x, y, seed=args.seed, epochs=args.epochs,
                       lr=0.02, regularizer=jp.l2, strengths=strengths, progress=progress)
  logits = jax.vmap(lambda p: jp.predict(model.apply, p, xt))(params)
  accs = [float(jp.accuracy(yt, lg)) for lg in logits]
  results["softmax_l2_sweep"] = {"reg_strength": strengths, "accuracy": accs, "seconds": secs}
  say(f"\n[2] softmax regression, L2 sweep (4 runs, one vmapped program, {secs:.1f} s):")
  for s, a in zip(strengths, accs):
    say(f"    reg_strength {s:g}: test accuracy {a:.4f}")

  # 3. A fully connected network and a small CNN.
  for name, model in [("mlp", jp.MLP((128, 10), dropout=0.1)),
                      ("cnn", jp.CNN(conv_features=(16, 32), padding="SAME", dense_features=(64,),
                                     conv_dropout=0.1, dense_dropout=0.3))]:
    params, secs = train(model, jp.softmax_cross_entropy, x, y, seed=args.seed, epochs=args.epochs,
                         lr=3e-3, progress=progress)
    probs = jax.nn.softmax(jp.predict(model.apply, params, xt))
    results[name] = {"accuracy": float(jp.accuracy(yt, probs)),
                     "macro_auc": float(jp.roc_auc(yt, probs)), "seconds": secs}
    say(f"\n[3] {name}: test accuracy {results[name]['accuracy']:.4f}, one-vs-rest macro AUC "
        f"{results[name]['macro_auc']:.4f} ({secs:.1f} s)")
  say("    confusion matrix of the CNN (rows: true digit, columns: predicted):")
  cm = np.asarray(jp.confusion_matrix(yt, probs.argmax(-1), 10))
  for row in cm:
    say("    " + " ".join(f"{v:3d}" for v in row))
  return results


if __name__ == "__main__":
  main()
