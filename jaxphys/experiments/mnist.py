"""The MNIST ladder: softmax regression -> MLP -> CNN -> CNN + augmentation -> ResNet.

    jaxphys mnist --data-dir DIR --out runs/mnist                 # the whole ladder
    jaxphys mnist --data-dir DIR --model resnet --augment --out runs/resnet

A random ``--val-fraction`` of the training images (stratified by class) is held out:
the epoch kept is the best on it (``--monitor``), early stopping watches it
(``--patience``), and the test set is evaluated once, at the end. Outputs, published as a
set into ``--out`` (see :mod:`jaxphys.runs`): ``results.json``, ``metrics.csv``,
``tensorboard/``, ``log.txt``, ``params.msgpack`` and the plots (written by its private report module).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import jax
import numpy as np
import optax

import jaxphys as jp
from jaxphys import augment, data
from jaxphys.experiments import _mnist_report as mnist_report, base
from jaxphys.experiments.cli import run_experiment
from jaxphys.experiments.runner import (data_identity, open_run, resume_record, run_identity,
                                        selected_epoch, training_callbacks)

MODELS = ("softmax", "mlp", "cnn", "resnet")
AUGMENTATIONS = ("none", "shift", "full")
# The peak learning rate of an optimizer other than the model's preset (without --lr).
OPTIMIZER_LR = {"adam": 1e-3, "sgd": 0.1}
# Per-model defaults of the settings left at None; "resnet" is tuned for MNIST-5k (issue 21):
# Nesterov SGD, as ResNets are trained (He et al. 2016), generalises better there than Adam;
# batches of 64 are the preset (README, "The ResNet target").
PRESETS = {
    "softmax": dict(batch_size=128, epochs=30, optimizer="adam", lr=5e-3,
                    augmentation="shift", dropout=0.0, l2=0.0),
    "mlp": dict(batch_size=128, epochs=30, optimizer="adam", lr=1e-3,
                augmentation="shift", dropout=0.2, l2=0.0),
    "cnn": dict(batch_size=128, epochs=30, optimizer="adam", lr=1e-3,
                augmentation="shift", dropout=0.0, l2=0.0),
    "resnet": dict(batch_size=64, epochs=40, optimizer="sgd", lr=0.1,
                   augmentation="full", dropout=0.0, l2=5e-4),
}
# The rungs of the ladder (no --model): (model, augmentation; None: the model's preset).
LADDER = (("softmax", None), ("mlp", None), ("cnn", None), ("cnn", "full"), ("resnet", "full"))
# Rough bytes per training example in flight (activations and their gradients, float32).
_BYTES_PER_EXAMPLE = {"softmax": 2e4, "mlp": 5e4, "cnn": 2e6, "resnet": 4e6}


@dataclasses.dataclass
class Config(base.TrainingConfig):
  """One MNIST run (``model=None``: the ladder). ``None`` settings take the model's preset."""

  dataset: str = base.setting("mnist", "data set", choices=tuple(sorted(data.DATASETS)))
  data_dir: Optional[str] = base.setting(None, "folder with the four IDX files (else "
                                         "$JAXPHYS_DATA, the cache, a download)")
  no_download: bool = base.setting(False, "never download data")
  model: Optional[str] = base.setting(None, "one model (default: the whole ladder)", choices=MODELS)
  augment: bool = base.setting(False, "the data set's full augmentation (= --augmentation full)")
  augmentation: Optional[str] = base.setting(None, "augmentation preset", choices=AUGMENTATIONS)
  epochs: Optional[int] = base.setting(None, "training epochs", low=1, high=base.MAX_COUNT)
  batch_size: Optional[int] = base.setting(None, "examples per training step (a batch larger than "
                                           "the training data becomes one batch of all of it)",
                                           low=1, high=base.MAX_COUNT)
  optimizer: Optional[str] = base.setting(
      None, "adam, or sgd (Nesterov momentum 0.9); without --lr, another optimizer than the "
      "model's preset takes its own rate (" + ", ".join(f"{k} {v:g}" for k, v in OPTIMIZER_LR.items())
      + ")", choices=base.OPTIMIZERS)
  lr: Optional[float] = base.setting(None, "peak learning rate", low=0.0, low_open=True)
  schedule: str = base.setting("cosine", "learning-rate schedule after the warm-up (with "
                               "'constant', --resume may add epochs)", choices=("cosine", "constant"))
  warmup_epochs: int = base.setting(1, "linear warm-up epochs (at most half the run)",
                                    low=0, high=base.MAX_COUNT)
  l2: Optional[float] = base.setting(None, "L2 regularisation strength (reg_strength of "
                                     "jaxphys.l2, biases excluded)", low=0.0)
  dropout: Optional[float] = base.setting(None, "dropout rate (MLP; ResNet: before its dense "
                                          "layer)", low=0.0, high=1.0,
                                          high_open=True)
  max_train: Optional[int] = base.setting(None, "use this many training images only (a random "
                                          "subset)", low=1, high=base.MAX_COUNT)
  resnet_features: tuple[int, ...] = base.setting((32, 64, 128), "channels of the ResNet's "
                                                  "stages", low=1, high=4096)
  resnet_blocks: int = base.setting(1, "residual blocks per ResNet stage", low=1, high=64)
  monitor: str = base.setting("eval_loss", "validation metric that selects the epoch kept",
                              choices=("eval_loss", "eval_accuracy"))


def resolve(config: Config, model: str, augmentation: Optional[str] = None) -> Config:
  """``config`` for one ``model`` with every ``None`` setting taken from its preset; an
  optimizer other than the preset's, without ``lr``, gets ``OPTIMIZER_LR``'s rate.

  >>> resolve(Config(lr=0.01), "mlp").dropout, resolve(Config(lr=0.01), "mlp").lr
  (0.2, 0.01)
  >>> resolve(Config(optimizer="adam"), "resnet").lr, resolve(Config(optimizer="sgd"), "cnn").lr
  (0.001, 0.1)
  """
  preset = dict(PRESETS[model])
  if config.optimizer not in (None, preset["optimizer"]):
    preset["lr"] = OPTIMIZER_LR[config.optimizer]
  if config.augment:
    preset["augmentation"] = "full"
  chosen = {"augmentation": augmentation} if augmentation and not config.augment else {}
  given = {k: v for k, v in dataclasses.asdict(config).items() if v is not None}
  return dataclasses.replace(config, **{**preset, **chosen, **given, "model": model,
                                        "augment": False})


def build_model(config: Config, num_classes: int) -> Any:
  """The Flax module of ``config.model`` for ``num_classes`` classes.

  >>> type(build_model(resolve(Config(), "resnet"), 10)).__name__
  'ResNet'
  """
  if config.model == "softmax":
    return jp.SoftmaxRegression(num_classes)
  if config.model == "mlp":
    return jp.MLP((512, 512, num_classes), activation="relu", dropout=config.dropout)
  if config.model == "resnet":
    return jp.models.ResNet(stage_features=config.resnet_features, blocks=config.resnet_blocks,
                            dropout=config.dropout, num_classes=num_classes)
  return jp.CNN(num_classes=num_classes)


def build_augmentation(config: Config) -> Optional[Callable]:
  """The on-device augmentation of ``config`` (``None`` for "none"): "shift" is +-1 pixel
  translations; "full" small rotations, zooms, 2-pixel shifts and elastic distortions for
  handwriting, mirror images and 1-pixel shifts for clothes.

  >>> build_augmentation(resolve(Config(augmentation="none"), "cnn")) is None
  True
  """
  if config.augmentation == "shift":
    return augment.random_translation(1.0)
  if config.augmentation != "full":
    return None
  if config.dataset == "fashion_mnist":
    return augment.compose(augment.random_flip(0.5), augment.random_translation(1.0))
  return augment.compose(augment.random_rotation(10.0), augment.random_zoom(0.1),
                         augment.random_translation(2.0), augment.random_elastic(2.0, 4.0))


def build_optimizer(config: Config, steps_per_epoch: int) -> optax.GradientTransformation:
  """Adam, or SGD with Nesterov momentum 0.9 (``config.optimizer``), at a rate with a
  linear warm-up, then cosine decay to 0 over the run or a constant rate; the rate lives
  in the optimiser's state (``optax.inject_hyperparams``), so the history and the loggers
  record it.

  >>> import jax.numpy as jnp
  >>> tx = build_optimizer(resolve(Config(), "mlp"), steps_per_epoch=10)
  >>> float(tx.init({"w": jnp.zeros(3)}).hyperparams["learning_rate"])  # warm-up starts at 0
  0.0
  """
  total = config.epochs * steps_per_epoch
  warmup = max(min(config.warmup_epochs * steps_per_epoch, total // 2), 1)
  if config.schedule == "constant":
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, config.lr, warmup), optax.constant_schedule(config.lr)], [warmup])
  else:
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, warmup, max(total, warmup + 1))
  return base.optimizer(config.optimizer, schedule)


def allowed_changes(config: Config) -> tuple:
  """Settings a resumed run may change: those that leave the computation as it was.

  >>> "epochs" in allowed_changes(Config(schedule="constant")), "epochs" in allowed_changes(Config())
  (True, False)
  """
  return base.BaseConfig.HARMLESS + (("epochs", "patience") if config.schedule == "constant" else ())


def _plan_data(config: Config, ds: data.ImageDataset) -> dict:
  """Which images train and validate ``config``, and its batch size; every check on the
  data (too small to split, memory) happens here, before the run starts."""
  x, y = ds.x_train, ds.y_train
  if config.max_train is not None and config.max_train < len(x):
    keep = np.sort(np.random.default_rng(config.seed).permutation(len(x))[: config.max_train])
    x, y = x[keep], y[keep]
  train, valid = base.validation_split(len(x), config.val_fraction, config.seed, labels=y)
  batch = min(config.batch_size, len(train))
  note = (f"note: batch_size {config.batch_size} is larger than the {len(train)} training images; "
          f"training with one batch of all {len(train)}") if batch < config.batch_size else None
  base.check_memory(batch * _BYTES_PER_EXAMPLE[config.model] + 8 * x.size,
                    f"batch_size {batch} of the {config.model} model")
  return {"train": (x[train], y[train]), "valid": (x[valid], y[valid]), "batch_size": batch,
          "note": note, "identity": data_identity(ds.x_train, ds.y_train, ds.x_test, ds.y_test)}


def _train_one(config: Config, ds: data.ImageDataset, plan: dict, staging: Path, checkpoints: Path,
               say) -> dict:
  """Trains one resolved ``config``, writes its files into ``staging``; returns its results."""
  if plan["note"]:
    say(plan["note"])
  split = {**plan, **{s: (data.to_float(plan[s][0]), plan[s][1]) for s in ("train", "valid")},
           "test": (data.to_float(ds.x_test), ds.y_test)}
  (x, y), valid = split["train"], split["valid"]
  init_key, fit_key, plot_key = jax.random.split(jax.random.key(config.seed), 3)
  model = build_model(config, len(ds.class_names))
  tx = build_optimizer(config, -(-len(x) // split["batch_size"]))
  aug = build_augmentation(config)
  state = jp.create_train_state(init_key, model, tx, x[:1], reg_strength=config.l2)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision=config.precision,
                            regularizer=jp.l2 if config.l2 else None, augment=aug)
  mode = "max" if config.monitor.endswith("accuracy") else "min"
  callbacks = training_callbacks(
      config, epochs=config.epochs, say=say, staging=staging, checkpoints=checkpoints, mode=mode,
      monitor=config.monitor, identity=run_identity(config, split["identity"]),
      allowed_changes=allowed_changes(config), prefix=f"{mnist_report.label(config)}: ")
  start = time.perf_counter()
  state, history = jp.fit(state, step, x, y, key=fit_key, epochs=config.epochs,
                          batch_size=split["batch_size"], callbacks=callbacks, eval_data=valid,
                          eval_step=jp.make_eval_step(model.apply, jp.softmax_cross_entropy,
                                                      precision=config.precision))
  wall = time.perf_counter() - start
  return mnist_report.report(config, ds, model, state, history, split, staging, aug, plot_key,
                             {"wall_seconds": wall, "resume": resume_record(callbacks),
                              "selected_epoch": selected_epoch(callbacks)})


def train_and_evaluate(config: Config, workdir: Union[str, os.PathLike], *, dataset: Optional[data.ImageDataset] = None) -> dict:
  """Trains ``config`` (one model, or the ladder when ``config.model`` is None) and
  publishes its outputs into ``workdir``; returns the results (``{"runs": [...]}`` for the
  ladder). ``dataset``: an already loaded :class:`~jaxphys.data.ImageDataset`. Every
  setting is checked before any data is read or anything written:

  >>> train_and_evaluate(Config(model="cnn", lr=-1.0), "runs/cnn")
  Traceback (most recent call last):
  ValueError: lr must be in (0, inf], got -1.0
  """
  base.check(config)
  out = base.check_out(workdir)
  rungs = LADDER if config.model is None else ((config.model, None),)
  configs = [resolve(config, model, aug) for model, aug in rungs]
  for c in configs:
    base.check(c)
  ds = dataset or data.load_mnist(config.dataset, config.data_dir, download=not config.no_download)
  plans = [_plan_data(c, ds) for c in configs]
  with open_run(out, config, config.quiet) as (run, say):
    say(f"{ds.name}: {len(ds.x_train)} train / {len(ds.x_test)} test images from {ds.source}; "
        f"device {jax.devices()[0]}")
    rows = []
    for c, plan in zip(configs, plans):
      sub = "" if config.model is not None else f"{c.model}_{c.augmentation}"
      rows.append(_train_one(c, ds, plan, run.staging / sub, run.checkpoints / sub, say))
      say(mnist_report.summary_line(rows[-1]))
    say("\n" + mnist_report.table(rows) + "\n\n" + mnist_report.per_class_table(rows))
    if config.model is None:
      mnist_report.write_ladder(run.staging / "ladder.json", rows)
  return rows[0] if config.model is not None else {"runs": rows}


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
  """The command line: ``jaxphys mnist --help``; returns the exit code.

  >>> main(["--seed", "-1", "--out", "runs/x"])  # prints "error: seed must be in [0, ...]"
  2
  """
  shown = {k: "per model: " + ", ".join(f"{m} {PRESETS[m][k]}" for m in MODELS)
           for k in ("epochs", "batch_size", "optimizer", "lr", "augmentation", "dropout", "l2")}
  parser = base.make_parser(Config, __doc__.split("\n\n")[0], defaults=shown)
  parser.prog = prog or parser.prog
  return run_experiment(parser, Config, train_and_evaluate, argv)
