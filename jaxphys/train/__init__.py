"""Compiled training: a train-state pytree, pure steps, epochs, ``fit`` and ``evaluate``.

The pieces compose without knowing each other:

* ``apply_fn(variables, x, train=..., rngs=...) -> logits`` is any Flax linen
  ``model.apply`` (or a pure function with that signature);
* ``loss_fn(logits, labels) -> (batch,)`` is any function of :mod:`jaxphys.losses`;
* ``regularizer(params) -> scalar`` is any function of :mod:`jaxphys.regularizers`,
  weighted by ``state.reg_strength``;
* ``tx`` is any optax ``GradientTransformation`` (``reduce_on_plateau`` included);
* ``augment(key, x) -> x`` is any transform of :mod:`jaxphys.augment`.

:func:`make_train_step` turns them into a pure, jit-compiled
``(state, batch, key) -> (state, metrics)``; :func:`make_train_epoch` into a compiled
epoch over device-resident data for a loop of your own; :func:`fit` runs those epochs
with :mod:`jaxphys.callbacks`. ``precision="bfloat16"`` (:func:`make_train_step`,
:func:`make_eval_step`, :func:`predict`) runs any model's matrix products and
convolutions on bfloat16 operands with float32 sums, everything else in float32
(:mod:`jaxphys.mixed_precision`); the steps' default, ``precision=None``, does so for
convolutional models on CPUs with AVX-512 BF16 and keeps float32 otherwise (``predict``:
float32 unless given). A state whose leaves carry a leading axis of ``K`` runs
(:func:`create_train_states`) trains all runs as one vmapped program: different seeds,
regularisation strengths or (with ``optax.inject_hyperparams``) learning rates.

Data parallelism is the same code on one device or many: ``fit`` and ``evaluate``
take a :class:`jax.sharding.Mesh` with a ``"batch"`` axis (:func:`data_parallel_mesh`);
the data and the state are replicated, each batch is split over the mesh, and XLA
inserts the gradient all-reduce. How programs are compiled on each backend is decided
inside jaxphys (BENCHMARKS.md records the choices).
"""

from jaxphys.train._epoch import TrainEpoch, make_train_epoch
from jaxphys.train._fit import evaluate, fit
from jaxphys.train._parallel import data_parallel_mesh
from jaxphys.train._step import (TrainState, classification_metrics, create_train_state,
                                 create_train_states, make_eval_step, make_train_step, predict)

__all__ = [
    "TrainState", "create_train_state", "create_train_states", "classification_metrics",
    "make_train_step", "make_eval_step", "predict", "make_train_epoch", "TrainEpoch", "fit",
    "evaluate", "data_parallel_mesh",
]
