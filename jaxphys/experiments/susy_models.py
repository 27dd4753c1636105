"""The SUSY search's classifiers: networks as in Baldi, Sadowski & Whiteson (2014), trained
``seeds`` at a time as one vmapped run, and LightGBM boosted trees."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Optional, Sequence

import jax
import numpy as np
import optax

import jaxphys as jp
from jaxphys.experiments import base

if TYPE_CHECKING:
  from jaxphys.experiments.susy import Config

__all__ = ["Network", "NETWORKS", "build_network", "train_network", "train_trees", "network_bytes"]


@dataclasses.dataclass(frozen=True)
class Network:
  """A network and how it is trained (``hidden=()`` is logistic regression): ``epochs``
  passes over the training events, more on a smaller sample (up to ``max_epochs``) so
  that it sees ``examples`` events in all."""

  hidden: tuple = ()
  activation: str = "tanh"
  optimizer: str = "adam"  # "adam" or "sgd" (Nesterov momentum 0.9)
  lr: float = 1e-3
  epochs: int = 5
  l2: float = 0.0
  dropout: float = 0.0
  examples: int = 0
  max_epochs: int = 0

  def epochs_for(self, n_train: int) -> int:
    """Epochs over ``n_train`` events: enough to see ``examples`` events, within
    ``[epochs, max_epochs]``.

    >>> [NETWORKS["deep"].epochs_for(n) for n in (800_000, 400_000, 240_000, 1_000)]
    [3, 6, 10, 10]
    """
    wanted = math.ceil(self.examples / max(n_train, 1))
    return max(self.epochs, min(wanted, self.max_epochs))


# Epochs are chosen so that the default run (800,000 training events, 3 seeds, 3 feature
# sets) takes minutes on 2 CPU cores. The four-layer networks need about 2.4 million
# training events seen to reach the boosted trees' AUC: on a smaller sample they train
# for more epochs (README, "SUSY").
NETWORKS = {
    "logreg": Network(lr=1e-2, epochs=5, l2=1e-6),
    "shallow": Network(hidden=(300,), optimizer="sgd", lr=0.05, epochs=5, l2=1e-5),
    "deep": Network(hidden=(300,) * 4, optimizer="sgd", lr=0.05, epochs=3, l2=1e-5,
                    examples=2_400_000, max_epochs=10),
    "modern": Network(hidden=(300,) * 4, activation="relu", lr=1e-3, epochs=3,
                      examples=2_400_000, max_epochs=10),
}


def build_network(name: str, config: Config, n_train: Optional[int] = None) -> tuple[Network, object]:
  """The :class:`Network` recipe of model ``name`` for ``n_train`` training events (its
  epochs from :meth:`Network.epochs_for`) with ``config``'s overrides (``epochs``, ``lr``,
  ``l2``, and ``dropout`` for "modern") and its Flax module.

  >>> from jaxphys.experiments.susy import Config
  >>> net, module = build_network("modern", Config(dropout=0.1), n_train=240_000)
  >>> net.hidden, net.dropout, net.epochs, type(module).__name__
  ((300, 300, 300, 300), 0.1, 10, 'MLP')
  """
  net = NETWORKS[name]
  if n_train is not None:
    net = dataclasses.replace(net, epochs=net.epochs_for(n_train))
  overrides = {k: getattr(config, k) for k in ("epochs", "lr", "l2") if getattr(config, k) is not None}
  if name == "modern" and config.dropout is not None:
    overrides["dropout"] = config.dropout
  net = dataclasses.replace(net, **overrides)
  if not net.hidden:
    return net, jp.LogisticRegression()
  return net, jp.MLP(features=(*net.hidden, 1), activation=net.activation, dropout=net.dropout)


def network_bytes(name: str, config: Config, n_features: int = 18) -> float:
  """Rough bytes that ``config.seeds`` vmapped runs of ``name`` hold: parameters with their
  gradients and Adam moments, and a batch's activations with their gradients.

  >>> from jaxphys.experiments.susy import Config
  >>> network_bytes("deep", Config(seeds=2)) < network_bytes("deep", Config(seeds=4))
  True
  """
  net = NETWORKS[name]
  widths = (n_features, *net.hidden, 1)
  params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
  return config.seeds * 4.0 * (4 * params + 3 * config.batch_size * sum(widths))


def train_network(name: str, config: Config, splits: dict, key: jax.Array,
                  callbacks: Sequence[jp.callbacks.Callback]) -> tuple[dict, dict]:
  """``config.seeds`` runs of ``name`` trained as one vmapped run; returns the scores
  (probabilities) ``{"valid"|"test": (seeds, n)}`` of the epoch selected on validation, and
  a record of the training.

  >>> from jaxphys.experiments.susy import Config
  >>> rng = np.random.default_rng(0)
  >>> splits = {s: (rng.normal(size=(n, 18)).astype(np.float32), rng.integers(0, 2, n))
  ...           for s, n in (("train", 256), ("valid", 64), ("test", 64))}
  >>> scores, info = train_network("logreg", Config(seeds=2, epochs=1), splits, jax.random.key(0), [])
  >>> scores["test"].shape, info["batch_size"]
  ((2, 64), 256)
  """
  (x, y), valid = splits["train"], splits["valid"]
  net, model = build_network(name, config, n_train=len(x))
  batch = min(config.batch_size, len(x))
  # Adam or Nesterov SGD, the rate decaying over the run (logged: base.optimizer)
  steps = net.epochs * -(-len(x) // batch)
  tx = base.optimizer(net.optimizer, optax.cosine_decay_schedule(net.lr, max(steps, 1)))
  init_key, fit_key = jax.random.split(key)
  penalty = jp.l1 if name == "logreg" and config.logreg_penalty == "l1" else jp.l2
  state = jp.create_train_states(jax.random.split(init_key, config.seeds), model, tx, x[:1],
                                 reg_strength=net.l2)
  step = jp.make_train_step(model.apply, jp.binary_cross_entropy, tx, precision=config.precision,
                            regularizer=penalty if net.l2 else None)
  evals = jp.make_eval_step(model.apply, jp.binary_cross_entropy, precision=config.precision)
  state, hist = jp.fit(state, step, x, y, key=fit_key, epochs=net.epochs, batch_size=batch,
                       eval_step=evals, eval_data=valid, callbacks=callbacks)
  scores = {s: np.asarray(jax.nn.sigmoid(jax.vmap(
      lambda p: jp.predict(model.apply, p, splits[s][0], batch_size=4096,
                           precision=config.precision))(state.params)))
      for s in ("valid", "test")}
  info = {"network": dataclasses.asdict(net), "batch_size": batch,
          "train_seconds": float(np.sum(hist["epoch_seconds"])),
          "compilation": hist.get("compilation"),
          "history": {k: np.asarray(v).tolist() for k, v in hist.items() if k != "compilation"}}
  return scores, info


def train_trees(config: Config, splits: dict, key: jax.Array) -> tuple[dict, dict]:
  """LightGBM boosted trees, one per seed (seeds vary row and column bagging), early-stopped
  on the validation split; scores as :func:`train_network`'s.

  >>> from jaxphys.experiments.susy import Config
  >>> rng = np.random.default_rng(0)
  >>> splits = {s: (rng.normal(size=(n, 18)), rng.integers(0, 2, n))
  ...           for s, n in (("train", 400), ("valid", 100), ("test", 100))}
  >>> scores, info = train_trees(Config(seeds=2, tree_rounds=3), splits, jax.random.key(0))
  >>> scores["valid"].shape, len(info["rounds"])
  ((2, 100), 2)
  """
  import lightgbm

  (x, y), (xv, yv) = splits["train"], splits["valid"]
  seeds = np.asarray(jax.random.randint(key, (config.seeds,), 0, 2 ** 31 - 1))
  scores, rounds, start = {"valid": [], "test": []}, [], time.perf_counter()
  for s in seeds:
    booster = lightgbm.LGBMClassifier(
        n_estimators=config.tree_rounds, learning_rate=config.tree_lr, num_leaves=config.tree_leaves,
        min_child_samples=50, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
        random_state=int(s), n_jobs=config.tree_threads, verbose=-1)
    booster.fit(x, y, eval_X=(xv,), eval_y=(yv,),
                callbacks=[lightgbm.early_stopping(config.tree_early_stopping, verbose=False)])
    for split in scores:
      scores[split].append(booster.predict_proba(splits[split][0])[:, 1])
    rounds.append(int(booster.best_iteration_ or config.tree_rounds))
  return ({k: np.stack(v).astype(np.float32) for k, v in scores.items()},
          {"rounds": rounds, "train_seconds": time.perf_counter() - start,
           "library": f"lightgbm {lightgbm.__version__}"})
