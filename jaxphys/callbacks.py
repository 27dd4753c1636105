"""Callbacks: code that :func:`jaxphys.fit` runs at the start, after every epoch and at
the end of training, as Keras callbacks do.

A callback subclasses :class:`Callback` and overrides any of its three hooks. Each gets
the :class:`Loop`, whose attributes it may read and set: ``loop.stop_training = True``
ends training after this epoch, ``loop.state`` may be kept (it stays valid after later
epochs) or replaced. Provided: :class:`EarlyStopping`, :class:`CSVLogger`,
:class:`TensorBoard`, :class:`ProgressBar` and (from :mod:`jaxphys.checkpoint`) the
``Checkpointer``.

>>> import jax, optax, numpy as np, jaxphys as jp
>>> class Stop(jp.callbacks.Callback):
...   def on_epoch_end(self, loop, epoch, logs):
...     loop.stop_training = logs["train_loss"] < 0.69
>>> x, y = np.ones((8, 2), np.float32), np.arange(8) % 2
>>> model, tx = jp.LogisticRegression(), optax.sgd(0.1)
>>> state = jp.create_train_state(jax.random.key(0), model, tx, x)
>>> step = jp.make_train_step(model.apply, jp.binary_cross_entropy, tx)
>>> _, history = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=5, batch_size=8, callbacks=[Stop()])
>>> len(history["train_loss"]) <= 5
True
"""

from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

__all__ = ["Callback", "Loop", "EarlyStopping", "CSVLogger", "TensorBoard", "ProgressBar",
           "Checkpointer"]


@dataclasses.dataclass
class Loop:
  """The state of a :func:`~jaxphys.fit` call, shared with its callbacks.

  Attributes:
    state: the current :class:`~jaxphys.TrainState` (after the latest epoch); a callback
      may keep it (nothing handed out is donated) or replace it (a restored checkpoint
      in ``on_train_begin``, the best state in ``on_train_end``).
    key: the PRNG key given to ``fit``.
    epochs: one past the last epoch to run.
    initial_epoch: the first epoch to run (``on_train_begin`` may change it: resume).
    history: metric name -> list, one entry per epoch done.
    stop_training: set True to stop after the current epoch.
  """

  state: Any
  key: Any
  epochs: int
  initial_epoch: int = 0
  history: dict = dataclasses.field(default_factory=dict)
  stop_training: bool = False


class Callback:
  """Base class of callbacks: every hook is a no-op, override the ones you need."""

  def on_train_begin(self, loop: Loop) -> None:
    """Before the first epoch."""

  def on_epoch_end(self, loop: Loop, epoch: int, logs: dict) -> None:
    """After epoch ``epoch`` (0-based); ``logs`` is its record (``train_loss``, ...)."""

  def on_train_end(self, loop: Loop) -> None:
    """After the last epoch, or after the one a callback stopped at."""


def _scalar(value) -> float:
  """A metric as one number: the mean over K runs."""
  return float(np.mean(np.asarray(value)))
