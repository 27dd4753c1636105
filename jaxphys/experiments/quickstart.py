"""Quickstart: the course's first steps on real data that needs no download.

scikit-learn ships 1,797 real 8x8 handwritten digits (UCI optdigits test set). On a fixed
75/25 split this trains, with the same jaxphys trainer and metrics throughout:

1. logistic regression, one digit against the rest, with its working point;
2. softmax regression with a vmapped sweep over the L2 strength (one compiled run);
3. a fully connected network and a small CNN.

    jaxphys quickstart [--seed S] [--epochs N] [--quiet] [--out DIR]
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxphys as jp
from jaxphys import callbacks as cb
from jaxphys.experiments import base
from jaxphys.experiments.cli import run_experiment
from jaxphys.experiments.console import Console
from jaxphys.experiments.environment import environment
from jaxphys.experiments.runner import open_run, write_json


@dataclasses.dataclass
class Config(base.BaseConfig):
  """The quickstart's settings."""

  epochs: int = base.setting(40, "training epochs of every model", low=1, high=base.MAX_COUNT)
  batch_size: int = base.setting(64, "examples per training step", low=1, high=base.MAX_COUNT)
  test_fraction: float = base.setting(0.25, "fraction of the digits held out for testing",
                                      low=0.0, high=1.0, low_open=True, high_open=True)
  target: int = base.setting(3, "the digit that logistic regression tells from the rest", low=0, high=9)
  target_tpr: float = base.setting(0.95, "signal efficiency of the working point", low=0.0, high=1.0,
                                   low_open=True)
  logistic_lr: float = base.setting(0.05, "Adam learning rate, logistic regression", low=0.0, low_open=True)
  softmax_lr: float = base.setting(0.02, "Adam learning rate, softmax regression", low=0.0, low_open=True)
  network_lr: float = base.setting(3e-3, "Adam learning rate, MLP and CNN", low=0.0, low_open=True)
  l2_strengths: tuple[float, ...] = base.setting((0.0, 1e-4, 1e-3, 1e-2), "L2 strengths of the "
                                                 "softmax sweep (one vmapped run)", low=0.0)
  mlp_dropout: float = base.setting(0.1, "dropout rate of the MLP", low=0.0, high=1.0, high_open=True)
  conv_dropout: float = base.setting(0.1, "dropout rate after the CNN's convolutions", low=0.0,
                                     high=1.0, high_open=True)
  dense_dropout: float = base.setting(0.3, "dropout rate of the CNN's dense layer", low=0.0,
                                      high=1.0, high_open=True)


def load_digits(config: Config) -> tuple:
  """Real 8x8 digits as ``(n, 8, 8, 1)`` float32 in [0, 1] and int32 labels, split at random:
  ``((x_train, y_train), (x_test, y_test))``.

  >>> (x, y), (xt, yt) = load_digits(Config())
  >>> x.shape, xt.shape, float(x.max())
  ((1347, 8, 8, 1), (450, 8, 8, 1), 1.0)
  """
  from sklearn.datasets import load_digits as sk_digits

  d = sk_digits()
  x = (d.images / 16.0).astype(np.float32)[..., None]
  y = d.target.astype(np.int32)
  order = np.asarray(jax.random.permutation(jax.random.key(config.seed), len(x)))
  cut = int((1 - config.test_fraction) * len(x))
  if not 0 < cut < len(x):
    raise ValueError(f"test_fraction {config.test_fraction} leaves no training or no test digits")
  return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])


def _train(config: Config, model, loss, x, y, lr: float, regularizer=None, strengths=None):
  """Trains one run (or one per entry of ``strengths``, vmapped); returns the state, the
  seconds and how the program was compiled."""
  tx = optax.adam(lr)
  step = jp.make_train_step(model.apply, loss, tx, regularizer)
  init_key, fit_key = jax.random.split(jax.random.key(config.seed))
  if strengths is None:
    state = jp.create_train_state(init_key, model, tx, x[:1])
  else:
    keys = jax.random.split(init_key, len(strengths))
    state = jp.create_train_states(keys, model, tx, x[:1], reg_strength=jnp.asarray(strengths))
  start = time.perf_counter()
  state, history = jp.fit(state, step, x, y, key=fit_key, epochs=config.epochs,
                          batch_size=min(config.batch_size, len(x)),
                          callbacks=() if config.quiet else (cb.ProgressBar(),))
  return state, time.perf_counter() - start, history["compilation"]


def _logistic_part(config: Config, train_data, test_data, say) -> dict:
  """1. Logistic regression, "is it a ``target``?", and a working point."""
  (x, y), (xt, yt) = train_data, test_data
  model = jp.LogisticRegression()
  state, secs, compiled = _train(config, model, jp.binary_cross_entropy, x,
                                 (y == config.target).astype(np.int32), config.logistic_lr,
                                 regularizer=jp.l2)
  p = jax.nn.sigmoid(jp.predict(model.apply, state, xt))
  yb = (yt == config.target).astype(np.int32)
  wp = jp.working_point(yb, p, target_tpr=config.target_tpr)
  r = {"accuracy": float(jp.accuracy(yb, p)), "precision": float(jp.precision(yb, p)),
       "recall": float(jp.recall(yb, p)), "auc": float(jp.roc_auc(yb, p)),
       "working_point": {"target_tpr": config.target_tpr, "threshold": float(wp.threshold),
                         "tpr": float(wp.tpr), "fpr": float(wp.fpr)}, "seconds": secs,
       "compilation": compiled}
  say(f"\n[1] logistic regression, '{config.target}' vs rest: accuracy {r['accuracy']:.4f}"
      f"  precision {r['precision']:.3f}  recall {r['recall']:.3f}  AUC {r['auc']:.4f}")
  say(f"    working point TPR >= {config.target_tpr}: threshold {wp.threshold:.3f}, "
      f"TPR {wp.tpr:.3f}, FPR {wp.fpr:.4f}")
  return r


def _softmax_part(config: Config, train_data, test_data, say) -> dict:
  """2. Softmax regression, one run per L2 strength, trained together as one vmapped program."""
  (x, y), (xt, yt) = train_data, test_data
  model = jp.SoftmaxRegression(10)
  strengths = list(config.l2_strengths)
  state, secs, compiled = _train(config, model, jp.softmax_cross_entropy, x, y, config.softmax_lr,
                                 regularizer=jp.l2, strengths=strengths)
  logits = jax.vmap(lambda p: jp.predict(model.apply, p, xt))(state.params)
  accs = [float(jp.accuracy(yt, lg)) for lg in logits]
  say(f"\n[2] softmax regression, L2 sweep ({len(strengths)} runs, one vmapped program, {secs:.1f} s):")
  for s, a in zip(strengths, accs):
    say(f"    reg_strength {s:g}: test accuracy {a:.4f}")
  return {"reg_strength": strengths, "accuracy": accs, "seconds": secs, "compilation": compiled}


def _networks_part(config: Config, train_data, test_data, say) -> dict:
  """3. A fully connected network and a small CNN, with the CNN's confusion matrix."""
  (x, y), (xt, yt) = train_data, test_data
  results = {}
  for number, name, model in [(3, "mlp", jp.MLP((128, 10), dropout=config.mlp_dropout)),
                              (4, "cnn", jp.CNN(conv_features=(16, 32), padding="SAME",
                                                dense_features=(64,), conv_dropout=config.conv_dropout,
                                                dense_dropout=config.dense_dropout))]:
    state, secs, compiled = _train(config, model, jp.softmax_cross_entropy, x, y, config.network_lr)
    probs = jax.nn.softmax(jp.predict(model.apply, state, xt))
    results[name] = {"accuracy": float(jp.accuracy(yt, probs)),
                     "macro_auc": float(jp.roc_auc(yt, probs)), "seconds": secs,
                     "compilation": compiled}
    say(f"\n[{number}] {name}: test accuracy {results[name]['accuracy']:.4f}, one-vs-rest macro AUC "
        f"{results[name]['macro_auc']:.4f} ({secs:.1f} s)")
  say("    confusion matrix of the CNN (rows: true digit, columns: predicted):")
  cm = np.asarray(jp.confusion_matrix(yt, probs.argmax(-1), 10))
  for row in cm:
    say("    " + " ".join(f"{v:3d}" for v in row))
  results["cnn"]["confusion_matrix"] = cm.tolist()
  return results


def train_and_evaluate(config: Config, workdir: Optional[str] = None) -> dict:
  """Runs the three parts; with ``workdir``, publishes ``results.json`` and ``log.txt`` there.

  >>> r = train_and_evaluate(Config(epochs=1, quiet=True))
  >>> sorted(r), 0.0 <= r["cnn"]["accuracy"] <= 1.0
  (['cnn', 'logistic', 'mlp', 'softmax_l2_sweep'], True)
  """
  base.check(config)
  out = base.check_out(workdir) if workdir is not None else None
  train_data, test_data = load_digits(config)
  with (open_run(out, config, config.quiet) if out else _console(config)) as (run, say):
    say(f"digits: {len(train_data[0])} train / {len(test_data[0])} test, "
        f"{train_data[0].shape[1:]} pixels, device {jax.devices()[0]}")
    results = {"logistic": _logistic_part(config, train_data, test_data, say),
               "softmax_l2_sweep": _softmax_part(config, train_data, test_data, say),
               **_networks_part(config, train_data, test_data, say)}
    programs = {name: part.pop("compilation") for name, part in results.items()}
    if run is not None:
      write_json(run.staging / "results.json", {**results, "config": dataclasses.asdict(config),
                                                "environment": environment(programs)})
  return results


@contextlib.contextmanager
def _console(config: Config):
  yield None, Console(quiet=config.quiet)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
  """The command line: ``jaxphys quickstart --help``; returns the exit code.

  >>> main(["--epochs", "0"])  # prints "error: epochs must be in [1, 2147483647], got 0"
  2
  """
  parser = base.make_parser(Config, __doc__.split("\n\n")[0], out_required=False)
  parser.prog = prog or parser.prog
  return run_experiment(parser, Config, train_and_evaluate, argv)
