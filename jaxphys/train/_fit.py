"""``fit`` (a short loop over compiled epochs, with callbacks) and ``evaluate``."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jaxphys.callbacks import Callback, Loop
from jaxphys.errors import TrainingDiverged
from jaxphys.train import _checks
from jaxphys.train._epoch import Evaluation, TrainEpoch, key_words, means, num_runs_of, run_keys
from jaxphys.train._parallel import placement
from jaxphys.train._step import TrainState


def _check_labels(step, state, x, y, what: str) -> None:
  apply_fn, loss_fn = getattr(step, "apply_fn", None), getattr(step, "loss_fn", None)
  if apply_fn is not None:
    _checks.check_labels(what, y, _checks.output_shape(apply_fn, state, x), loss_fn)


def _split_eval_data(eval_data):
  if not isinstance(eval_data, (tuple, list)) or len(eval_data) not in (2, 3):
    raise ValueError("eval_data must be (x, y) or (x, y, sample_weight)")
  return tuple(eval_data) + (None,) * (3 - len(eval_data))


def fit(state: TrainState, train_step: Callable, x: ArrayLike, y: ArrayLike, *,
        key: jax.Array, epochs: int, batch_size: int,
        eval_step: Optional[Callable] = None,
        eval_data: Optional[Sequence[Optional[ArrayLike]]] = None, eval_batch_size: int = 1024,
        initial_epoch: int = 0, callbacks: Sequence[Callback] = (),
        sample_weight: Optional[ArrayLike] = None,
        class_weight: Optional[Union[Mapping[int, float], Sequence[float]]] = None,
        mesh: Optional[Mesh] = None, shared_order: bool = False) -> tuple[TrainState, dict]:
  """Trains ``state`` for epochs ``initial_epoch .. epochs - 1`` over ``(x, y)``.

  The data go to the device once. Epoch ``e`` visits the examples in an order seeded by
  ``(key, e)`` and draws dropout and augmentation keys from ``fold_in(key, e)``, so a run
  resumed from the state after epoch ``e - 1`` with ``initial_epoch=e`` continues
  exactly. ``state`` may hold ``K`` stacked runs (:func:`create_train_states`); then
  ``key`` is one key (split into K) or ``(K,)`` keys, and every metric gets a ``K`` axis.
  Labels are checked against the model's output before anything compiles. The state
  passed in, and every state a callback sees, stays valid. Nothing is printed: add a
  :class:`~jaxphys.callbacks.ProgressBar`.

  Args:
    state: initial :class:`TrainState`.
    train_step: from :func:`make_train_step`.
    x, y: ``(n, ...)`` inputs and ``(n,)`` or ``(n, C)`` labels (NumPy or JAX arrays).
    key: PRNG key for shuffling, dropout and augmentation.
    epochs: index one past the last epoch to run.
    batch_size: examples per step; the last partial batch is filled with examples from
      the start of the epoch's order, masked out of the loss and metrics (BatchNorm's
      batch statistics do see them).
    eval_step, eval_data: from :func:`make_eval_step`, and ``(x, y)`` or ``(x, y,
      sample_weight)`` evaluated after every epoch (batches of ``eval_batch_size``).
    initial_epoch: the first epoch to run.
    callbacks: :class:`~jaxphys.callbacks.Callback` objects, called in order.
    sample_weight: ``(n,)`` non-negative example weights; each batch's loss is
      ``sum(w * loss) / sum(w)``, so integer weights count as repeated examples.
    class_weight: ``{class: weight}`` (or a sequence indexed by class), multiplied in.
    mesh: data parallelism: a mesh with a ``"batch"`` axis whose size divides
      ``batch_size`` and ``eval_batch_size`` (default :func:`data_parallel_mesh` over
      the local devices that divide both).
    shared_order: with K runs, every run visits the examples in run 0's order;
      dropout and augmentation keys stay per run (common random numbers for a sweep).

  Raises:
    ValueError: inputs that do not fit each other or the model (one line).
    jaxphys.errors.TrainingDiverged: the objective or the parameters stopped being
      finite (after the epoch; its ``history`` holds the epochs before).

  Returns:
    ``(state, history)``: ``history`` maps ``train_<metric>``, ``eval_<metric>``,
    ``learning_rate`` (when the optimiser exposes it: ``optax.inject_hyperparams``,
    times ``reduce_on_plateau``'s scale) and ``epoch_seconds`` to ``(epochs_run,)`` (or
    ``(epochs_run, K)``) arrays, ``compile_seconds`` to a float, and ``compilation`` to
    ``{"train": ..., "eval": ...}``, how each pass was compiled (see
    :attr:`TrainEpoch.compilation`), for a run's record.

  >>> import jax, optax, numpy as np, jaxphys as jp
  >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
  >>> y = (x[:, 0] > 0).astype(int)
  >>> model, tx = jp.LogisticRegression(), optax.adam(0.1)
  >>> state = jp.create_train_state(jax.random.key(0), model, tx, x)
  >>> step = jp.make_train_step(model.apply, jp.binary_cross_entropy, tx)
  >>> state, history = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=20, batch_size=16)
  >>> bool(history["train_accuracy"][-1] > 0.9)
  True
  """
  if epochs is None or int(epochs) < 0 or int(initial_epoch) < 0:
    raise ValueError(f"fit: epochs and initial_epoch must be non-negative integers, got {epochs!r}, {initial_epoch!r}")
  _checks.check_data(x, y, batch_size, "fit")
  if eval_data is not None and eval_step is None:
    raise ValueError("fit: eval_data needs eval_step (see make_eval_step)")
  num_runs = num_runs_of(state)
  weight = _checks.example_weights("fit", y, sample_weight, class_weight)
  _check_labels(train_step, state, x, y, "fit: y")
  sizes = (batch_size,)
  if eval_data is not None:
    xe, ye, we = _split_eval_data(eval_data)
    _checks.check_data(xe, ye, eval_batch_size, "fit: eval_data")
    we = _checks.example_weights("fit: eval_data", ye, we, None)
    _check_labels(eval_step, state, xe, ye, "fit: eval_data labels")
    sizes += (eval_batch_size,)
  replicate, split = placement(mesh, *sizes)
  epoch_fn = TrainEpoch(train_step, x, y, weight, batch_size=batch_size, num_runs=num_runs,
                        shared_order=shared_order, replicate=replicate, split=split)
  evaluation = None if eval_data is None else Evaluation(
      eval_step, xe, ye, we, batch_size=eval_batch_size, num_runs=num_runs, replicate=replicate, split=split)

  loop = Loop(state=state, key=key, epochs=int(epochs), initial_epoch=int(initial_epoch))
  return _run(loop, list(callbacks), epoch_fn, evaluation, num_runs)


def _run(loop: Loop, callbacks: list, epoch_fn: TrainEpoch, evaluation: Optional[Evaluation],
         num_runs: Optional[int]) -> tuple[TrainState, dict]:
  """The epochs of :func:`fit`, with its callbacks; ``(state, history)``."""
  for cb in callbacks:
    cb.on_train_begin(loop)
  loop.history = {k: list(v) for k, v in loop.history.items()}
  keys = run_keys(loop.key, num_runs)
  words, keys = key_words(keys), epoch_fn.replicate(keys)
  state = epoch_fn.replicate(loop.state)
  order = epoch_fn.order(words, loop.initial_epoch)
  start = time.perf_counter()
  epoch_fn.compile(state, keys, loop.initial_epoch, order)
  if evaluation is not None:
    evaluation.compile(state)
  compile_seconds = time.perf_counter() - start
  for epoch in range(loop.initial_epoch, loop.epochs):
    start = time.perf_counter()
    state, sums = epoch_fn.start(state, keys, epoch, order)
    if epoch + 1 < loop.epochs:  # the next order, on the host, while the device runs
      order = epoch_fn.order(words, epoch + 1)
    sums = jax.device_get(sums)
    seconds = time.perf_counter() - start
    _check_finite(epoch, sums, state.params, num_runs, loop.history)
    logs = _logs(sums, state, evaluation, seconds)
    for k, v in logs.items():
      loop.history.setdefault(k, []).append(v)
    loop.state = state
    for cb in callbacks:
      cb.on_epoch_end(loop, epoch, logs)
    if loop.state is not state:  # a callback replaced it
      state = epoch_fn.replicate(loop.state)
    if loop.stop_training:
      break
  for cb in callbacks:
    cb.on_train_end(loop)
  history = {k: np.asarray(v) for k, v in loop.history.items()}
  history["compile_seconds"] = compile_seconds
  history["compilation"] = {"train": epoch_fn.compilation,
                            **({"eval": evaluation.compilation} if evaluation is not None else {})}
  return loop.state, history


def _logs(sums: dict, state: TrainState, evaluation: Optional[Evaluation], seconds: float) -> dict:
  """One epoch's record: training means, learning rate, evaluation means, seconds."""
  logs = {f"train_{k}": v for k, v in means(sums).items()}
  logs.update(_learning_rate(state.opt_state))
  if evaluation is not None:
    logs.update({f"eval_{k}": v for k, v in means(evaluation(state)).items()})
  logs["epoch_seconds"] = seconds
  return logs


def _learning_rate(opt_state) -> dict:
  """``{"learning_rate": ...}`` when ``opt_state`` shows it (``optax.inject_hyperparams``,
  times the scale of ``optax.contrib.reduce_on_plateau``); ``{"learning_rate_scale":
  ...}`` for a plateau scale alone; else ``{}``."""
  found = {}

  def visit(node):
    if isinstance(node, optax.contrib.ReduceLROnPlateauState):
      found.setdefault("scale", node.scale)
    hyper = getattr(node, "hyperparams", None)
    if isinstance(hyper, dict) and "learning_rate" in hyper:
      found.setdefault("lr", hyper["learning_rate"])
    if isinstance(node, (tuple, list)):
      for child in node:
        visit(child)
    elif isinstance(node, dict):
      for child in node.values():
        visit(child)

  visit(opt_state)
  found = jax.device_get(found)
  if "lr" in found:
    lr = np.asarray(found["lr"]) * np.asarray(found.get("scale", 1.0))
    return {"learning_rate": float(lr) if lr.ndim == 0 else lr}
  if "scale" in found:
    s = np.asarray(found["scale"])
    return {"learning_rate_scale": float(s) if s.ndim == 0 else s}
  return {}


@functools.partial(jax.jit, static_argnums=1)
def _finite_runs(params, num_runs):
  """``(K,)`` (or ``(1,)``) bool: every parameter of each run is finite."""
  per_leaf = [jnp.all(jnp.isfinite(p).reshape(num_runs or 1, -1), axis=1)
              for p in jax.tree_util.tree_leaves(params)]
  return jnp.all(jnp.stack(per_leaf), axis=0)


def _check_finite(epoch: int, sums: dict, params, num_runs, history: dict) -> None:
  """Raises :class:`~jaxphys.errors.TrainingDiverged` if a run's objective or
  parameters stopped being finite during ``epoch``."""
  first = np.atleast_1d(np.asarray(sums["first_nonfinite_step"]))
  bad = (first >= 0) | ~np.asarray(_finite_runs(params, num_runs))
  if bad.any():
    steps = first[bad & (first >= 0)]
    raise TrainingDiverged(epoch, int(steps.min()) if steps.size else -1,
                           runs=np.flatnonzero(bad).tolist() if num_runs else None,
                           history={k: np.asarray(v) for k, v in history.items()})


def evaluate(eval_step: Callable, state: Any, x: ArrayLike, y: ArrayLike, *,
             batch_size: int = 1024, sample_weight: Optional[ArrayLike] = None,
             mesh: Optional[Mesh] = None, num_runs: Optional[int] = None) -> dict:
  """Metrics of ``eval_step`` (see :func:`make_eval_step`) averaged over ``(x, y)``.

  ``state``: a :class:`TrainState` (K stacked runs are recognised) or bare parameters
  (then ``num_runs=K`` for stacked ones). ``x``: ``(n, ...)``, ``y``: ``(n,)`` or
  ``(n, C)``, checked against the model's output; ``sample_weight``: ``(n,)``, each
  metric becoming ``sum(w * m) / sum(w)``. Returns floats, or ``(K,)`` arrays.

  >>> import jax, optax, numpy as np, jaxphys as jp
  >>> model = jp.LogisticRegression()
  >>> state = jp.create_train_state(jax.random.key(0), model, optax.sgd(0.1), np.ones((1, 2)))
  >>> ev = jp.make_eval_step(model.apply, jp.binary_cross_entropy)
  >>> m = jp.evaluate(ev, state, np.zeros((5, 2), np.float32), np.array([0, 1, 1, 0, 1]))
  >>> round(m["loss"], 4)
  0.6931
  """
  _checks.check_data(x, y, batch_size, "evaluate")
  num_runs = num_runs_of(state) if num_runs is None else num_runs
  weight = _checks.example_weights("evaluate", y, sample_weight, None)
  _check_labels(eval_step, state, x, y, "evaluate: y")
  replicate, split = placement(mesh, batch_size)
  evaluation = Evaluation(eval_step, x, y, weight, batch_size=batch_size, num_runs=num_runs,
                          replicate=replicate, split=split)
  return means(evaluation(replicate(state)))
