"""The training state and the pure steps: one batch of training, one of evaluation."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import flax
import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxphys.mixed_precision import apply_in_precision, get_policy

PyTree = Any
Batch = Mapping[str, jax.Array]


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as a pytree of arrays.

  Attributes:
    step: ``()`` int32 number of optimiser steps taken (``(K,)`` for K runs).
    params: the model parameters (``variables["params"]`` of a linen module).
    model_state: the other variable collections, e.g. ``{"batch_stats": ...}`` of
      ``flax.linen.BatchNorm`` (``{}`` for a model without any). Training applies the
      model with them mutable and keeps the updated values; evaluation and
      :func:`predict` use them as they are (BatchNorm's running averages).
    opt_state: the optax state of ``tx``.
    reg_strength: ``()`` float32 multiplier of the regulariser (``(K,)`` for K runs).
  """

  step: jax.Array
  params: PyTree
  model_state: PyTree
  opt_state: optax.OptState
  reg_strength: jax.Array


def create_train_state(key: jax.Array, model: flax.linen.Module,
                       tx: optax.GradientTransformation, example_x: ArrayLike,
                       reg_strength: float = 0.0) -> TrainState:
  """Initialises ``model`` from ``key`` on the shape of ``example_x`` (``(batch, ...)``).

  >>> import jax, optax, jaxphys as jp
  >>> s = jp.create_train_state(jax.random.key(0), jp.MLP((4, 2)), optax.sgd(0.1), jax.numpy.ones((1, 3)))
  >>> int(s.step), s.params["Dense_0"]["kernel"].shape, s.model_state
  (0, (3, 4), {})
  """
  variables = dict(model.init({"params": key}, jnp.asarray(example_x[:1]), train=False))
  params = variables.pop("params")
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                    opt_state=tx.init(params), reg_strength=jnp.asarray(reg_strength, jnp.float32))


def create_train_states(keys: jax.Array, model: flax.linen.Module,
                        tx: optax.GradientTransformation, example_x: ArrayLike,
                        reg_strength: float = 0.0) -> TrainState:
  """``K`` independent states stacked on a leading axis, one per key in ``keys`` (``(K,)``).

  ``reg_strength`` is a scalar or ``(K,)`` (a sweep). Learning-rate sweeps: build ``tx``
  with ``optax.inject_hyperparams`` and set ``state.opt_state.hyperparams``.

  >>> import jax, optax, jaxphys as jp
  >>> keys = jax.random.split(jax.random.key(0), 3)
  >>> s = jp.create_train_states(keys, jp.LogisticRegression(), optax.sgd(0.1), jax.numpy.ones((1, 2)))
  >>> s.step.shape, s.params["Dense_0"]["kernel"].shape
  ((3,), (3, 2, 1))
  """
  if not is_key_batch(keys):
    raise ValueError(f"keys must be a batch of PRNG keys, got shape {jnp.shape(keys)}")
  strengths = jnp.broadcast_to(jnp.asarray(reg_strength, jnp.float32), (jnp.shape(keys)[0],))
  return jax.vmap(lambda k, r: create_train_state(k, model, tx, example_x, r))(keys, strengths)


def is_key_batch(key) -> bool:
  """Whether ``key`` is a ``(K,)`` batch of PRNG keys (typed, or raw ``(K, 2)``)."""
  key = key if isinstance(key, jax.Array) else jnp.asarray(key)
  typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
  return key.ndim == (1 if typed else 2)


def classification_metrics(logits: jax.Array, labels: jax.Array, weight: jax.Array) -> dict:
  """Weighted accuracy: ``(batch,)`` binary logits (cut at 0) or ``(batch, C)`` arg-max.

  >>> import jax.numpy as jnp
  >>> classification_metrics(jnp.array([1.0, -2.0]), jnp.array([1, 1]), jnp.ones(2))
  {'accuracy': Array(0.5, dtype=float32)}
  """
  if logits.ndim == 1:
    pred, true = logits > 0, labels > 0.5
  else:
    pred = jnp.argmax(logits, -1)
    true = jnp.argmax(labels, -1) if labels.ndim == logits.ndim else labels
  return {"accuracy": weighted_mean(weight, (pred == true).astype(jnp.float32))}


def weighted_mean(w: jax.Array, values: jax.Array) -> jax.Array:
  """``sum(w * values) / sum(w)``; 0 where every weight is 0 (a batch of padding)."""
  total = jnp.sum(w)
  return jnp.sum(w * values) / jnp.where(total > 0, total, 1.0)


def _weight(batch: Batch) -> jax.Array:
  w = batch.get("weight")
  return jnp.ones(jnp.shape(batch["y"])[:1], jnp.float32) if w is None else w


def variables(state_or_params) -> dict:
  """The ``variables`` dict for ``apply``: from a :class:`TrainState`, a variables dict
  (with a ``"params"`` key) or bare parameters."""
  if isinstance(state_or_params, TrainState):
    return {"params": state_or_params.params, **state_or_params.model_state}
  if isinstance(state_or_params, Mapping) and "params" in state_or_params:
    return dict(state_or_params)
  return {"params": state_or_params}


def _update(tx, grads, opt_state, params, value):
  """``tx.update``, passing ``value=`` (the objective) to transformations that take extra
  arguments (``optax.contrib.reduce_on_plateau``; ``optax.chain`` forwards it only to
  those that use it)."""
  if isinstance(tx, optax.GradientTransformationExtraArgs):
    return tx.update(grads, opt_state, params, value=value)
  return tx.update(grads, opt_state, params)


def make_train_step(apply_fn: Callable, loss_fn: Callable, tx: optax.GradientTransformation,
                    regularizer: Optional[Callable] = None, augment: Optional[Callable] = None,
                    metrics_fn: Callable = classification_metrics,
                    precision: Optional[str] = None) -> Callable:
  """Builds the pure, jit-compiled step ``(state, batch, key) -> (state, metrics)``.

  The objective is ``sum(w * loss_fn(logits, y)) / sum(w) + state.reg_strength *
  regularizer(params)``, with per-example weights ``w = batch["weight"]`` (default 1;
  0 masks padding), so integer weights count as repeated examples. ``key`` feeds the
  augmentation and the ``"dropout"`` rng. The model's other collections
  (``state.model_state``) are applied mutable and updated; ``tx`` gets the objective as
  ``value=`` when it takes extra arguments (``optax.contrib.reduce_on_plateau``).

  Args:
    apply_fn: ``apply_fn(variables, x, train=True, rngs={"dropout": k})`` -> logits.
    loss_fn: ``(logits, labels) -> (batch,)`` per-example loss.
    tx: optax transformation.
    regularizer: ``params -> scalar`` penalty, or None.
    augment: ``(key, x) -> x`` on-device augmentation of the batch, or None.
    metrics_fn: ``(logits, labels, weight) -> dict`` of weighted batch means.
    precision: the dtype of the operands of the model's products
      (:mod:`jaxphys.mixed_precision`): ``"float32"``, ``"bfloat16"`` (every matrix
      product and convolution of ``apply_fn``, forward and backward, from bfloat16
      operands into float32; parameters, activations, optimiser state, model state,
      logits, loss and metrics stay float32), or ``None``: the default for the model
      and backend, chosen when the step is traced
      (:func:`jaxphys.mixed_precision.default_precision`: on a CPU with AVX-512 BF16,
      bfloat16 for convolutional models and for those with wide matrix products,
      else float32).

  Returns:
    ``step(state, batch, key)`` with ``batch = {"x": (B, ...), "y": (B, ...),
    "weight": (B,) optional}``; metrics hold ``loss`` (data term), ``objective``
    (with the penalty) and those of ``metrics_fn``, each a scalar. Called directly it
    compiles with XLA's default options; :func:`make_train_epoch` compiles a whole
    epoch of it with the options :func:`fit` uses on this backend. ``step.precision``
    is the precision's name (for ``None``: the one chosen at the last trace, ``None``
    before it where the choice depends on the model).

  >>> import jax, optax, jaxphys as jp
  >>> model, tx = jp.LogisticRegression(), optax.sgd(0.1)
  >>> state = jp.create_train_state(jax.random.key(0), model, tx, jax.numpy.ones((1, 2)))
  >>> step = jp.make_train_step(model.apply, jp.binary_cross_entropy, tx)
  >>> batch = {"x": jax.numpy.ones((4, 2)), "y": jax.numpy.array([0, 1, 1, 1])}
  >>> state, metrics = step(state, batch, jax.random.key(1))
  >>> int(state.step), sorted(metrics)
  (1, ['accuracy', 'loss', 'objective'])
  """
  model = apply_in_precision(apply_fn, _checked(precision))

  def train_step(state: TrainState, batch: Batch, key) -> tuple[TrainState, dict]:
    x, y, w = batch["x"], batch["y"], _weight(batch)
    aug_key, dropout_key = jax.random.split(key)
    if augment is not None:
      x = augment(aug_key, x)
    mutable = list(state.model_state)

    def objective(params):
      variables = {"params": params, **state.model_state}
      if mutable:
        logits, model_state = model(variables, x, train=True, rngs={"dropout": dropout_key},
                                    mutable=mutable)
        model_state = {**state.model_state, **model_state}
      else:
        logits = model(variables, x, train=True, rngs={"dropout": dropout_key})
        model_state = state.model_state
      loss = weighted_mean(w, loss_fn(logits, y))
      penalty = 0.0 if regularizer is None else state.reg_strength * regularizer(params)
      return loss + penalty, (loss, logits, model_state)

    (obj, (loss, logits, model_state)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = _update(tx, grads, state.opt_state, state.params, obj)
    state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          model_state=model_state, opt_state=opt_state)
    step.precision = _name(model, precision)  # at trace time: what this program runs in
    return state, {"loss": loss, "objective": obj, **metrics_fn(logits, y, w)}

  step = jax.jit(train_step)
  step.apply_fn, step.loss_fn = apply_fn, loss_fn  # what fit checks the labels against
  step.precision = _name(model, precision)
  return step


def _checked(precision: Optional[str]) -> Optional[str]:
  """``precision`` itself, after :func:`get_policy` has checked the name (one line)."""
  if precision is not None:
    get_policy(precision)
  return precision


def _name(model: Callable, precision: Optional[str]) -> Optional[str]:
  """The name of the precision ``model`` (from :func:`apply_in_precision`) runs in:
  ``precision``'s, or for ``None`` the one chosen at the model's last trace."""
  return getattr(model, "precision", None) if precision is None else get_policy(precision).name


def make_eval_step(apply_fn: Callable, loss_fn: Callable,
                   metrics_fn: Callable = classification_metrics,
                   precision: Optional[str] = None) -> Callable:
  """Builds the pure ``(state_or_params, batch) -> metrics`` evaluation step.

  The model runs with ``train=False`` and the state's running values (BatchNorm);
  ``state_or_params`` is a :class:`TrainState` or bare parameters. Metrics are weighted
  means over ``batch["weight"]`` (default 1): ``loss`` and those of ``metrics_fn``,
  float32 scalars. ``precision``: the dtype of the model's product operands, as in
  :func:`make_train_step` (float32 logits; ``eval_step.precision`` its name, for
  ``None`` the one chosen at the last call or trace).

  >>> import jax, optax, jaxphys as jp
  >>> model = jp.LogisticRegression()
  >>> state = jp.create_train_state(jax.random.key(0), model, optax.sgd(0.1), jax.numpy.ones((1, 2)))
  >>> ev = jp.make_eval_step(model.apply, jp.binary_cross_entropy)
  >>> sorted(ev(state, {"x": jax.numpy.ones((3, 2)), "y": jax.numpy.array([0, 1, 1])}))
  ['accuracy', 'loss']
  """
  model = apply_in_precision(apply_fn, _checked(precision))

  def eval_step(state_or_params, batch: Batch) -> dict:
    w = _weight(batch)
    logits = model(variables(state_or_params), batch["x"], train=False)
    eval_step.precision = _name(model, precision)
    return {"loss": weighted_mean(w, loss_fn(logits, batch["y"])), **metrics_fn(logits, batch["y"], w)}

  eval_step.apply_fn, eval_step.loss_fn = apply_fn, loss_fn
  eval_step.precision = _name(model, precision)
  return eval_step


def predict(apply_fn: Callable, state_or_params: Any, x: ArrayLike, *, batch_size: int = 1024,
            precision: Optional[str] = "float32") -> jax.Array:
  """Logits of the model on ``x`` (``(n, ...)`` -> ``(n, ...)``), ``train=False``, in batches.

  ``state_or_params``: a :class:`TrainState` (its running statistics are used) or bare
  parameters. Pure and jit-able (``batch_size`` and ``precision`` static); vmap it over
  K runs. ``precision``: the dtype of the model's product operands, as in
  :func:`make_train_step`, but float32 unless given, so that predictions (and
  forward-mode derivatives of them) do not depend on the CPU; ``None`` for the
  trainer's default. The logits are float32.

  >>> import jax, optax, jaxphys as jp
  >>> model = jp.SoftmaxRegression(3)
  >>> state = jp.create_train_state(jax.random.key(0), model, optax.sgd(0.1), jax.numpy.ones((1, 2)))
  >>> jp.predict(model.apply, state, jax.numpy.ones((5, 2)), batch_size=2).shape
  (5, 3)
  >>> jp.predict(model.apply, state, jax.numpy.ones((5, 2)), precision="bfloat16").dtype
  dtype('float32')
  """
  if int(batch_size) <= 0:
    raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
  model = apply_in_precision(apply_fn, _checked(precision))
  x = jnp.asarray(x)
  n = x.shape[0]
  v = variables(state_or_params)
  num_batches = -(-n // batch_size)
  padded = jnp.pad(x, [(0, num_batches * batch_size - n)] + [(0, 0)] * (x.ndim - 1))
  chunks = padded.reshape((num_batches, batch_size) + x.shape[1:])
  out = jax.lax.map(lambda xb: model(v, xb, train=False), chunks)
  return out.reshape((num_batches * batch_size,) + out.shape[2:])[:n]
