"""The SUSY search: logistic regression, boosted trees and neural networks, as in Baldi,
Sadowski & Whiteson (2014), on the low-level, high-level and all 18 features.

    python experiments/susy.py --out runs/susy                        # 1,000,000 simulated events
    python experiments/susy.py --data SUSY.csv.gz --out runs/susy_uci  # the UCI file, official split

Data: by default :func:`jaxphys.physics.simulate_susy` (a toy of the real simulation;
see its docstring), split 80 / 10 / 10 % like the real file; with ``--data`` the UCI
file and its official split (4,000,000 / 500,000 / 500,000). Inputs are standardised
with the training split's mean and standard deviation.

Models (``--models``): ``logreg`` (L2, or L1 with ``--logreg-penalty l1``), ``trees``
(LightGBM gradient-boosted trees, early-stopped on the validation split), ``shallow``
(1 x 300 tanh) and ``deep`` (4 x 300 tanh), both SGD with momentum as in the paper, and
``modern`` (4 x 300 ReLU, Adam, ``--dropout``). The ``--seeds`` runs of a network train
together as one vmapped run; tree seeds vary the bagging.

Writes ``results.json`` (``auc[model][features] = {"mean", "std", "values"}``, accuracy,
signal efficiency at fixed background efficiencies, discovery significance, timings),
``roc_<features>.png`` and ``features.png`` (signal and background histograms of every
feature).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import jax
import numpy as np
import optax

import jaxphys as jp
from jaxphys import data, physics, plots
from jaxphys import _cli
from jaxphys._io import write_json
from jaxphys.checkpoint import Checkpointer
from jaxphys.errors import TrainingDiverged

MODELS = ("logreg", "trees", "shallow", "deep", "modern")
FEATURES = ("low", "high", "all")
# Background efficiencies at which the signal efficiency is reported.
BACKGROUND_EFFICIENCIES = (0.01, 0.05, 0.1)
# Baldi, Sadowski & Whiteson (2014), Table 2 (SUSY, AUC on the 500,000 test events).
PUBLISHED = {
    "BDT": {"low": 0.850, "high": 0.835, "all": 0.863},
    "shallow NN": {"low": 0.867, "high": 0.863, "all": 0.875},
    "deep NN": {"low": 0.872, "high": 0.865, "all": 0.876},
    "deep NN + dropout": {"low": 0.876, "high": 0.869, "all": 0.879},
}


@dataclasses.dataclass(frozen=True)
class Network:
  """A network and how it is trained (``hidden=()`` is logistic regression)."""

  hidden: tuple = ()
  activation: str = "tanh"
  optimizer: str = "adam"  # "adam" or "sgd" (Nesterov momentum 0.9)
  lr: float = 1e-3
  epochs: int = 5
  l2: float = 0.0
  dropout: float = 0.0


# Epochs are chosen so that the default run (800,000 training events, 3 seeds, 3 feature
# sets) takes minutes on 2 CPU cores.
NETWORKS = {
    "logreg": Network(lr=1e-2, epochs=5, l2=1e-6),
    "shallow": Network(hidden=(300,), optimizer="sgd", lr=0.05, epochs=5, l2=1e-5),
    "deep": Network(hidden=(300,) * 4, optimizer="sgd", lr=0.05, epochs=3, l2=1e-5),
    "modern": Network(hidden=(300,) * 4, activation="relu", lr=1e-3, epochs=3),
}


@dataclasses.dataclass
class Config:
  simulate: int = 1_000_000  # simulated events when no data file is given
  data: Optional[str] = None  # path to SUSY.csv(.gz)
  models: tuple = MODELS
  features: tuple = FEATURES
  seeds: int = 3
  seed: int = 0
  epochs: Optional[int] = None  # None: each network's default
  batch_size: int = 256
  max_train: Optional[int] = None  # first N training rows only
  logreg_penalty: str = "l2"  # or "l1"
  dropout: Optional[float] = None  # for "modern"; None: its default (0)
  tree_rounds: int = 300
  tree_threads: int = 0  # LightGBM threads (0: its default)
  checkpoint_every: int = 0  # epochs between network checkpoints in workdir/checkpoints (0: none)


def load_data(config: Config, key) -> dict:
  """``{"train"|"valid"|"test": (x (n, 18) float32, y (n,) int32)}`` and a description."""
  if config.data is not None:
    x, y = data.load_susy(config.data)
    source = f"UCI SUSY file {config.data}"
  else:
    x, y = physics.simulate_susy(key, config.simulate)
    source = f"jaxphys.physics.simulate_susy, {config.simulate:,} events, GeV and radians"
  splits = {s: (x[data.split_rows(len(x), s)], y[data.split_rows(len(x), s)])
            for s in ("train", "valid", "test")}
  if config.max_train is not None:
    splits["train"] = tuple(v[: config.max_train] for v in splits["train"])
  return {"splits": splits, "source": source}


def _standardise(splits: dict, columns) -> dict:
  x_train = splits["train"][0][:, columns]
  mean, std = x_train.mean(0), x_train.std(0) + 1e-6
  return {s: ((x[:, columns] - mean) / std, y) for s, (x, y) in splits.items()}


def _optimizer(net: Network, steps: int):
  schedule = optax.cosine_decay_schedule(net.lr, max(steps, 1))
  if net.optimizer == "sgd":
    return optax.sgd(schedule, momentum=0.9, nesterov=True)
  return optax.adam(schedule)


def build_network(name: str, config: Config) -> tuple[Network, object]:
  """The :class:`Network` recipe and the Flax module for model ``name``."""
  net = NETWORKS[name]
  if config.epochs is not None:
    net = dataclasses.replace(net, epochs=config.epochs)
  if name == "modern" and config.dropout is not None:
    net = dataclasses.replace(net, dropout=config.dropout)
  if not net.hidden:
    return net, jp.LogisticRegression()
  return net, jp.MLP(features=(*net.hidden, 1), activation=net.activation, dropout=net.dropout)


def train_network(name: str, config: Config, splits: dict, key, quiet: bool,
                  checkpointer=None, resume: bool = False) -> tuple[np.ndarray, dict]:
  """``config.seeds`` runs trained as one vmapped run; test scores ``(seeds, n_test)``.
  With a :class:`~jaxphys.checkpoint.Checkpointer`, checkpointed and (``resume``)
  continued from its latest checkpoint."""
  net, model = build_network(name, config)
  (x, y), valid, (x_test, _) = splits["train"], splits["valid"], splits["test"]
  tx = _optimizer(net, net.epochs * -(-len(x) // config.batch_size))
  init_key, fit_key = jax.random.split(key)
  penalty = jp.l1 if name == "logreg" and config.logreg_penalty == "l1" else jp.l2
  state = jp.create_train_states(jax.random.split(init_key, config.seeds), model, tx, x,
                                 reg_strength=net.l2)
  step = jp.make_train_step(model.apply, jp.binary_cross_entropy, tx,
                            regularizer=penalty if net.l2 else None)
  evals = jp.make_eval_step(model.apply, jp.binary_cross_entropy)
  state, hist = jp.fit(state, step, x, y, key=fit_key, epochs=net.epochs,
                       batch_size=config.batch_size, eval_step=evals, eval_data=valid,
                       progress=not quiet, checkpointer=checkpointer, resume=resume)
  logits = jax.jit(jax.vmap(lambda p: jp.predict(model.apply, p, x_test, batch_size=4096)))(state.params)
  info = {"network": dataclasses.asdict(net), "compile_seconds": hist["compile_seconds"],
          "train_seconds": float(np.sum(hist["epoch_seconds"])),
          "valid_loss": np.asarray(hist["eval_loss"]).tolist()}
  return np.asarray(jax.nn.sigmoid(logits)), info


def train_trees(config: Config, splits: dict, key) -> tuple[np.ndarray, dict]:
  """LightGBM boosted trees, one per seed (seeds vary row and column bagging)."""
  import lightgbm

  (x, y), (xv, yv), (x_test, _) = splits["train"], splits["valid"], splits["test"]
  seeds = np.asarray(jax.random.randint(key, (config.seeds,), 0, 2 ** 31 - 1))
  scores, rounds, start = [], [], time.perf_counter()
  for s in seeds:
    booster = lightgbm.LGBMClassifier(
        n_estimators=config.tree_rounds, learning_rate=0.1, num_leaves=63, min_child_samples=50,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=int(s),
        n_jobs=config.tree_threads, verbose=-1)
    booster.fit(x, y, eval_X=(xv,), eval_y=(yv,),
                callbacks=[lightgbm.early_stopping(20, verbose=False)])
    scores.append(booster.predict_proba(x_test)[:, 1])
    rounds.append(int(booster.best_iteration_ or config.tree_rounds))
  return np.stack(scores).astype(np.float32), {
      "rounds": rounds, "train_seconds": time.perf_counter() - start, "library": f"lightgbm {lightgbm.__version__}"}


@jax.jit
def _scores_metrics(y, s):
  """Per-run metrics of test scores ``s`` ``(n,)`` (probabilities) against labels ``y``."""
  wps = [jp.working_point(y, s, target_fpr=f) for f in BACKGROUND_EFFICIENCIES]
  return {"auc": jp.roc_auc(y, s), "accuracy": jp.accuracy(y, s),
          "significance": jp.discovery_significance(y, s).significance,
          **{f"signal_efficiency@fpr={f}": wp.tpr for f, wp in zip(BACKGROUND_EFFICIENCIES, wps)}}


def summarise(y, scores) -> dict:
  """``{metric: {"mean", "std", "values"}}`` over the runs of ``scores`` ``(runs, n)``."""
  per_run = [jax.device_get(_scores_metrics(y, s)) for s in scores]
  return {k: {"mean": float(np.mean([r[k] for r in per_run])),
              "std": float(np.std([r[k] for r in per_run])),
              "values": [float(r[k]) for r in per_run]} for k in per_run[0]}


def train_and_evaluate(config: Config, workdir, quiet: bool = False, resume: bool = False) -> dict:
  """Trains every model on every feature set, evaluates on the test split, writes ``workdir``.

  Networks are checkpointed every ``config.checkpoint_every`` epochs in
  ``workdir/checkpoints/<model>_<features>``; ``resume`` continues each from its latest
  checkpoint (a finished one is only evaluated again). A diverging network writes
  ``results.json`` with its ``failure`` and raises
  :class:`~jaxphys.errors.TrainingDiverged`.
  """
  unknown = set(config.models) - set(MODELS) | set(config.features) - set(FEATURES)
  if unknown:
    raise ValueError(f"unknown models or feature sets: {', '.join(sorted(unknown))}")
  if config.seeds < 1:
    raise ValueError(f"seeds must be at least 1, got {config.seeds}")
  _cli.check_config(config, positive=("batch_size", "tree_rounds", "simulate", "epochs", "max_train"),
                    not_negative=("checkpoint_every",))
  say = (lambda *a: None) if quiet else print
  data_key, *model_keys = jax.random.split(jax.random.key(config.seed), 1 + len(MODELS))
  start = time.perf_counter()
  loaded = load_data(config, data_key)  # bad data fails here, before anything is written
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  splits = loaded["splits"]
  y_test = splits["test"][1]
  say(f"data: {loaded['source']}; train/valid/test {', '.join(str(len(v[1])) for v in splits.values())}"
      f" ({time.perf_counter() - start:.1f} s)")
  metrics: dict = {}
  details: dict = {}
  curves: dict = {fs: {} for fs in config.features}
  for fs in config.features:
    columns = data.FEATURE_SETS[fs]
    std = _standardise(splits, columns)
    for name in config.models:
      key = model_keys[MODELS.index(name)]
      start = time.perf_counter()
      if name == "trees":
        scores, info = train_trees(config, {s: (splits[s][0][:, columns], splits[s][1]) for s in splits}, key)
      else:
        ckpt = None
        if config.checkpoint_every or resume:
          ckpt = Checkpointer(workdir / "checkpoints" / f"{name}_{fs}", keep=2,
                              every=config.checkpoint_every or 10 ** 9)
        try:
          scores, info = train_network(name, config, std, key, quiet, ckpt, resume)
        except TrainingDiverged as e:
          write_json(workdir / "results.json", _cli.failure(e, config, model=name, features=fs))
          raise
      info["wall_seconds"] = time.perf_counter() - start
      summary = summarise(y_test, scores)
      for metric, value in summary.items():
        metrics.setdefault(metric, {}).setdefault(name, {})[fs] = value
      details.setdefault(name, {})[fs] = info
      fpr, tpr, _ = jp.roc_curve(y_test, scores[0])
      curves[fs][f"{name} (AUC {summary['auc']['mean']:.4f})"] = (fpr, tpr)
      say(f"{name:8s} {fs:5s} AUC {summary['auc']['mean']:.4f} ± {summary['auc']['std']:.4f}  "
          f"significance {summary['significance']['mean']:.2f}  ({info['wall_seconds']:.0f} s)")

  results = {
      "data": {"source": loaded["source"], **{f"n_{s}": int(len(v[1])) for s, v in splits.items()},
               "signal_fraction_test": float(np.mean(y_test))},
      "config": dataclasses.asdict(config),
      **metrics,
      "significance_definition": (
          "max over cuts on the output of the Asimov discovery significance (Cowan et al. 2011) "
          "with s = 100 * signal efficiency, b = 1000 * background efficiency, sigma_b = 0.05 b"),
      "models": details, "published_auc": PUBLISHED, "checks": _checks(metrics["auc"]),
      "environment": _cli.environment(),
  }
  for fs, c in curves.items():
    plots.save_roc_curves(workdir / f"roc_{fs}.png", c, title=f"SUSY, {fs} features (seed 0 of each model)")
  x_test = splits["test"][0]
  units = "" if config.data else " (GeV, rad)"
  plots.save_class_histograms(workdir / "features.png", x_test, y_test, data.SUSY_COLUMNS,
                              title=f"the 18 features, test split{units}")
  write_json(workdir / "results.json", results)
  say("\n" + table(results))
  return results


def _checks(auc: dict) -> dict:
  """The issue's sanity targets, reported either way."""
  out = {}
  if "deep" in auc and "logreg" in auc:
    lr, dn = auc["logreg"], auc["deep"]
    out["deep_not_worse_than_logreg"] = {fs: dn[fs]["mean"] >= lr[fs]["mean"] for fs in dn if fs in lr}
    if {"low", "high"} <= set(lr) and "low" in dn:
      # How much of what the high-level features give logistic regression the deep
      # network finds on the low-level ones alone (1 = all of it).
      gain = lr["high"]["mean"] - lr["low"]["mean"]
      out["logreg_high_minus_low"] = gain
      out["deep_low_minus_logreg_low"] = dn["low"]["mean"] - lr["low"]["mean"]
      out["low_deep_recovers_high_logreg_gain"] = (
          out["deep_low_minus_logreg_low"] / gain if gain > 1e-3 else None)
  return out


def table(results: dict) -> str:
  """Markdown table: AUC (mean ± std over seeds) per model and feature set."""
  auc = results["auc"]
  fss = [fs for fs in FEATURES if any(fs in v for v in auc.values())]
  lines = ["| model | " + " | ".join(f"AUC {fs}" for fs in fss) + " | significance (all) |",
           "| --- |" + " --- |" * (len(fss) + 1)]
  for name, per in auc.items():
    cells = [f"{per[fs]['mean']:.4f} ± {per[fs]['std']:.4f}" if fs in per else "" for fs in fss]
    sig = results["significance"][name].get("all")
    cells.append(f"{sig['mean']:.2f} ± {sig['std']:.2f}" if sig else "")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def parse_args(argv=None):
  ap = _cli.ArgumentParser(description=__doc__.split("\n\n")[0])
  src = ap.add_mutually_exclusive_group()
  src.add_argument("--simulate", type=int, metavar="N", help="simulate N events (default 1,000,000)")
  src.add_argument("--data", help="the UCI SUSY.csv or SUSY.csv.gz")
  ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
  ap.add_argument("--features", nargs="+", choices=FEATURES, default=list(FEATURES))
  ap.add_argument("--seeds", type=int, default=3, help="runs per model (vmapped for networks)")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--epochs", type=int, help="epochs for every network (default: per model)")
  ap.add_argument("--batch-size", type=int, default=256)
  ap.add_argument("--max-train", type=int, help="use the first N training events only")
  ap.add_argument("--logreg-penalty", choices=("l2", "l1"), default="l2")
  ap.add_argument("--dropout", type=float, help="dropout rate of the modern network")
  ap.add_argument("--tree-rounds", type=int, default=300, help="maximum boosting rounds")
  ap.add_run_arguments()
  return ap.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
  args = parse_args(argv)
  config = Config(simulate=Config.simulate if args.simulate is None else args.simulate, data=args.data,
                  models=tuple(args.models), features=tuple(args.features), seeds=args.seeds,
                  seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                  max_train=args.max_train, logreg_penalty=args.logreg_penalty,
                  dropout=args.dropout, tree_rounds=args.tree_rounds,
                  checkpoint_every=args.checkpoint_every)
  return train_and_evaluate(config, args.out, quiet=args.quiet, resume=args.resume)


if __name__ == "__main__":
  sys.exit(_cli.run(main))
