"""The SUSY search: logistic regression, boosted trees and neural networks, as in Baldi,
Sadowski & Whiteson (2014), on the low-level, high-level and all 18 features.

    jaxphys susy --out runs/susy                          # 1,000,000 simulated events
    jaxphys susy --data SUSY.csv.gz --out runs/susy_uci    # the UCI file

Data: :func:`jaxphys.physics.simulate_susy` by default, else the UCI file (``--data``).
The last 10 % of the rows are the test split (the official one of the real file); the
``--val-fraction`` of all rows before it is the validation split (0.1: the official one),
which selects each network's epoch, early-stops the trees and chooses the cut of the
discovery significance; the test split is evaluated once, at the end. Inputs are
standardised with the training split's mean and standard deviation.

Models (``--models``): ``logreg``, ``trees`` (LightGBM), ``shallow`` (1 x 300 tanh) and
``deep`` (4 x 300 tanh) trained with SGD as in the paper, ``modern`` (4 x 300 ReLU, Adam).
The ``--seeds`` runs of a network train together as one vmapped run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional, Sequence, Union

import jax
import numpy as np

from jaxphys import data, physics, plots
from jaxphys.experiments import base, susy_report
from jaxphys.experiments.cli import run_experiment
from jaxphys.experiments.environment import environment
from jaxphys.experiments.runner import (data_identity, open_run, resume_record, run_identity,
                                        selected_epoch, training_callbacks, write_json)
from jaxphys.experiments.susy_models import (NETWORKS, build_network, network_bytes, train_network,
                                             train_trees)

MODELS = ("logreg", "trees", "shallow", "deep", "modern")
# Units of the simulated features, column by column (data.SUSY_COLUMNS); "": dimensionless.
UNITS = ("GeV", "", "rad", "GeV", "", "rad", "GeV", "rad",
         "GeV", "GeV", "GeV", "GeV", "", "GeV", "GeV", "GeV", "rad", "")
FEATURES = ("low", "high", "all")


@dataclasses.dataclass
class Config(base.TrainingConfig):
  """The SUSY search's settings; ``None`` network settings take each network's preset."""

  simulate: int = base.setting(1_000_000, "events to simulate when no --data is given", low=10)
  data: Optional[str] = base.setting(None, "the UCI SUSY.csv or SUSY.csv.gz")
  models: tuple[str, ...] = base.setting(MODELS, "models to train", choices=MODELS)
  features: tuple[str, ...] = base.setting(FEATURES, "feature sets", choices=FEATURES)
  seeds: int = base.setting(3, "runs per model (vmapped for networks)", low=1, high=base.MAX_COUNT)
  epochs: Optional[int] = base.setting(None, "epochs of every network (default: logreg 5, "
                                       "shallow 5, deep and modern 3, more on fewer than "
                                       "800,000 training events: up to 10, to see 2.4 million)", low=1, high=base.MAX_COUNT)
  batch_size: int = base.setting(256, "examples per training step", low=1, high=base.MAX_COUNT)
  lr: Optional[float] = base.setting(None, "peak learning rate of every network (default: "
                                     "logreg 0.01, shallow/deep 0.05 SGD, modern 0.001 Adam)",
                                     low=0.0, low_open=True)
  l2: Optional[float] = base.setting(None, "L2 strength of every network (default: logreg 1e-6, "
                                     "shallow/deep 1e-5, modern 0)", low=0.0)
  logreg_penalty: str = base.setting("l2", "penalty of logistic regression", choices=("l2", "l1"))
  dropout: Optional[float] = base.setting(None, "dropout rate of the modern network (default 0)",
                                          low=0.0, high=1.0, high_open=True)
  max_train: Optional[int] = base.setting(None, "use the first N training events only", low=1,
                                          high=base.MAX_COUNT)
  tree_rounds: int = base.setting(300, "maximum boosting rounds", low=1, high=base.MAX_COUNT)
  tree_lr: float = base.setting(0.1, "boosting learning rate", low=0.0, high=1.0, low_open=True)
  tree_leaves: int = base.setting(63, "leaves per tree", low=2, high=131072)
  tree_early_stopping: int = base.setting(20, "stop boosting after this many rounds without a "
                                          "better validation loss", low=1, high=base.MAX_COUNT)
  tree_threads: int = base.setting(0, "LightGBM threads (0: its default)", low=0, high=4096)
  n_signal: float = base.setting(100.0, "expected signal events before the cut", low=0.0, low_open=True)
  n_background: float = base.setting(1000.0, "expected background events before the cut", low=0.0,
                                     low_open=True)
  background_uncertainty: float = base.setting(0.05, "relative uncertainty of the background", low=0.0)
  val_fraction: float = base.setting(0.1, "fraction of all rows, before the test split, used for "
                                     "validation", low=0.0, high=0.9, low_open=True, high_open=True)


def _split(x, y, config: Config) -> dict:
  """Train / validation / test rows (see the module's docstring)."""
  n = len(y)
  test = data.split_rows(n, "test")
  start = test.start - int(round(config.val_fraction * n))
  splits = {"train": (x[:start], y[:start]), "valid": (x[start:test.start], y[start:test.start]),
            "test": (x[test], y[test])}
  if config.max_train is not None:
    splits["train"] = tuple(v[: config.max_train] for v in splits["train"])
  for name, (_, labels) in splits.items():
    counts = np.bincount(np.asarray(labels, np.int64), minlength=2)
    if len(labels) == 0 or counts.min() == 0:
      raise ValueError(f"the {name} split of {n} events holds {counts[0]} background and {counts[1]} "
                       "signal events; it needs both classes (more events, or another --val-fraction)")
  return splits


def _load_data(config: Config) -> dict:
  """The splits ``{"train"|"valid"|"test": (x (n, 18) float32, y (n,) int32)}``, a
  description of the source and the data's identity (SHA-256)."""
  if config.data is not None:
    x, y = data.load_susy(config.data)
    source = f"UCI SUSY file {config.data}"
  else:
    x, y = physics.simulate_susy(jax.random.key(config.seed), config.simulate)
    source = f"jaxphys.physics.simulate_susy, {config.simulate:,} events, GeV and radians"
  x, y = np.asarray(x), np.asarray(y)
  return {"splits": _split(x, y, config), "source": source, "identity": data_identity(x, y)}


def check_memory(config: Config) -> None:
  """Refuses settings whose simulation or vmapped runs would not fit in memory.

  >>> check_memory(Config(seeds=10 ** 8))  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ValueError: seeds 100000000 of the ... network would need about ... GiB; this machine has ...
  """
  if config.data is None:  # the events, their standardised copies and the splits
    base.check_memory(config.simulate * 18 * 4 * 8, f"simulate {config.simulate:,} events")
  for name in set(config.models) & set(NETWORKS):
    base.check_memory(network_bytes(name, config), f"seeds {config.seeds} of the {name} network")


def _standardise(splits: dict, columns) -> dict:
  x_train = splits["train"][0][:, columns]
  mean, std = x_train.mean(0), x_train.std(0) + 1e-6
  return {s: ((x[:, columns] - mean) / std, y) for s, (x, y) in splits.items()}


def _train_model(name, fs, config, loaded, key, run, say) -> tuple[dict, dict]:
  """Scores of ``config.seeds`` runs of model ``name`` on feature set ``fs``."""
  splits = _standardise(loaded["splits"], data.FEATURE_SETS[fs])
  if name == "trees":
    return train_trees(config, splits, key)
  folder = f"{name}_{fs}"
  callbacks = training_callbacks(
      config, epochs=build_network(name, config, len(splits["train"][1]))[0].epochs, say=say,
      staging=run.staging / folder,
      checkpoints=run.checkpoints / folder, identity=run_identity(config, loaded["identity"]),
      allowed_changes=base.BaseConfig.HARMLESS, monitor="eval_loss", mode="min", prefix=f"{name} {fs}: ")
  scores, info = train_network(name, config, splits, key, callbacks)
  return scores, {**info, "resume": resume_record(callbacks), "selected_epoch": selected_epoch(callbacks)}


def train_and_evaluate(config: Config, workdir: Union[str, os.PathLike]) -> dict:
  """Trains every model on every feature set, evaluates on the test split once, and
  publishes ``results.json``, ``roc_<features>.png``, ``features.png``, ``log.txt`` and
  each network's ``metrics.csv`` and ``tensorboard/`` into ``workdir``. Every setting is
  checked before any event is simulated or read:

  >>> train_and_evaluate(Config(dropout=-0.1), "runs/susy")
  Traceback (most recent call last):
  ValueError: dropout must be in [0, 1), got -0.1
  """
  base.check(config)
  out = base.check_out(workdir)
  check_memory(config)
  loaded = _load_data(config)
  labels = {s: v[1] for s, v in loaded["splits"].items()}
  model_keys = dict(zip(MODELS, jax.random.split(jax.random.key(config.seed), len(MODELS))))
  with open_run(out, config, config.quiet) as (run, say):
    say(f"data: {loaded['source']}; train/valid/test "
        f"{', '.join(str(len(v)) for v in labels.values())}")
    metrics, details, curves = {}, {}, {fs: {} for fs in config.features}
    for fs in config.features:
      for name in config.models:
        start = time.perf_counter()
        scores, info = _train_model(name, fs, config, loaded, model_keys[name], run, say)
        info["wall_seconds"] = time.perf_counter() - start
        summary = susy_report.summarise(config, labels, scores)
        for metric, value in summary.items():
          metrics.setdefault(metric, {}).setdefault(name, {})[fs] = value
        details.setdefault(name, {})[fs] = info
        curves[fs][f"{name} (AUC {summary['auc']['mean']:.4f})"] = scores["test"][0]
        say(f"{name:8s} {fs:5s} AUC {summary['auc']['mean']:.4f} ± {summary['auc']['std']:.4f}  "
            f"significance {summary['significance']['mean']:.2f} (cut from validation; "
            f"{summary['significance_valid']['mean']:.2f} there)  ({info['wall_seconds']:.0f} s)")
    results = _results(config, loaded, metrics, details)
    _plots(config, loaded, curves, run.staging)
    write_json(run.staging / "results.json", results)
    say("\n" + susy_report.table(results, FEATURES))
  return results


def _results(config, loaded, metrics, details) -> dict:
  splits = loaded["splits"]
  programs = {f"{name} {fs}": info.pop("compilation")  # recorded once, in the environment
              for name, per_fs in details.items() for fs, info in per_fs.items()
              if "compilation" in info}
  return {"data": {"source": loaded["source"], "sha256": loaded["identity"],
                   **{f"n_{s}": int(len(v[1])) for s, v in splits.items()},
                   "signal_fraction_test": float(np.mean(splits["test"][1]))},
          "config": dataclasses.asdict(config), **metrics,
          "significance_definition": susy_report.significance_definition(config),
          "models": details, "published_auc": susy_report.PUBLISHED,
          "checks": susy_report.checks(metrics["auc"]), "environment": environment(programs)}


def _plots(config, loaded, curves, staging) -> None:
  import jaxphys as jp

  x_test, y_test = loaded["splits"]["test"]
  for fs, c in curves.items():
    roc = {k: jp.roc_curve(y_test, s)[:2] for k, s in c.items()}
    plots.save_roc_curves(staging / f"roc_{fs}.png", roc, title=f"SUSY, {fs} features (seed 0 of each model)")
  # Simulated events are in GeV and radians; the UCI file's columns are rescaled (no units).
  units = None if config.data else UNITS
  plots.save_class_histograms(staging / "features.png", x_test, y_test, data.SUSY_COLUMNS,
                              title="the 18 features, test split", units=units)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
  """The command line: ``jaxphys susy --help``; returns the exit code.

  >>> main(["--dropout", "nan", "--out", "runs/x"])  # prints "error: dropout must be finite"
  2
  """
  parser = base.make_parser(Config, __doc__.split("\n\n")[0])
  parser.prog = prog or parser.prog
  return run_experiment(parser, Config, train_and_evaluate, argv)
