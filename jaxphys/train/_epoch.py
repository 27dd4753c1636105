"""Compiled passes over device-resident data: a training epoch and an evaluation.

A pass is ``num_batches`` applications of one batch function that gathers its batch
from data placed on the device once. The last partial batch is filled with examples
from the start of the order and masked by zero weights, so every batch has the same
shape and nothing recompiles; per-batch metrics are summed on the device, so the host
waits once per pass. Whether the pass is one compiled loop or one compiled step per
batch, and with which XLA options, is decided by :mod:`jaxphys.train._backend`.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jaxphys.train import _backend
from jaxphys.train._parallel import placement
from jaxphys.train._step import TrainState, is_key_batch

_copy = jax.jit(lambda tree: jax.tree_util.tree_map(jnp.copy, tree))


def _accumulate(sums: dict, metrics: dict, count, step=None) -> dict:
  """Adds ``count``-weighted batch means to running sums (``count`` under ``"count"``);
  with the optimiser ``step``, records the first whose objective is not finite."""
  out = {k: sums[k] + count * v for k, v in metrics.items()}
  out["count"] = sums["count"] + count
  first = sums["first_nonfinite_step"]
  value = metrics.get("objective", metrics.get("loss"))
  if step is not None and value is not None:
    first = jnp.where((first < 0) & ~jnp.isfinite(value), step.astype(jnp.int32), first)
  out["first_nonfinite_step"] = first
  return out


def means(sums: dict) -> dict:
  """Host means of a pass's metric sums: floats, or ``(K,)`` arrays for K runs."""
  sums = dict(jax.device_get(sums))
  sums.pop("first_nonfinite_step")
  count = sums.pop("count")
  names = sorted(sums, key=lambda k: (k != "loss", k))  # the loss first
  return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in
          ((k, sums[k] / np.where(count > 0, count, 1)) for k in names)}


class _Pass:
  """Compiles (once, ahead of time) and runs ``batch_fn`` over every batch.

  ``batch_fn(carry, sums, data, plan, b) -> (carry, sums)`` (``sums=None``: the batch's
  metrics instead). With ``num_runs`` it is vmapped: per-run carry and sums, shared data,
  ``plan`` mapped where ``plan_axes`` says. ``step``: the train or eval step, whose
  ``precision`` attribute names the precision it was traced in (read once compiled).
  """

  def __init__(self, batch_fn, num_batches, num_runs, plan_axes, replicate, donate, step):
    if num_runs is not None:
      batch_fn = jax.vmap(batch_fn, in_axes=(0, 0, None, plan_axes, None))
    self.batch_fn, self.num_batches, self.replicate, self.donate = batch_fn, num_batches, replicate, donate
    self.compiled, self.loop, self.options, self.compile_seconds = None, None, {}, 0.0
    self.step, self.precision = step, None

  def _zero_sums(self):
    sums = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), self._shapes)
    sums["count"] = np.zeros_like(next(iter(sums.values())))
    sums["first_nonfinite_step"] = np.full(sums["count"].shape, -1, np.int32)
    return sums

  def _epoch(self, carry, data, plan):
    sums = jax.tree_util.tree_map(jnp.asarray, self._zero_sums())
    body = lambda b, c: self.batch_fn(c[0], c[1], data, plan, b)
    return jax.lax.fori_loop(0, self.num_batches, body, (carry, sums))

  def compile(self, carry, data, plan) -> None:
    if self.compiled is not None:
      return
    start = time.perf_counter()
    closed, shapes = jax.make_jaxpr(self.batch_fn, return_shape=True)(carry, None, data, plan, 0)
    self._shapes, self.precision = shapes[1], getattr(self.step, "precision", None)
    self.loop, self.options = _backend.plan(closed.jaxpr)
    if self.loop == "scan":  # the input stays valid: nothing donated
      self.compiled = _backend.jit(self._epoch, self.options).lower(carry, data, plan).compile()
    else:
      sums = self.replicate(self._zero_sums())
      self.compiled = _backend.jit(self.batch_fn, self.options, donate_argnums=(0, 1) if self.donate else ()).lower(
          carry, sums, data, plan, np.int32(0)).compile()
    self.compile_seconds = time.perf_counter() - start

  @property
  def compilation(self) -> Optional[dict]:
    """What was compiled: ``{"backend", "loop", "xla_options", "precision"}`` (``None``
    before; ``precision`` from the step, :mod:`jaxphys.mixed_precision`)."""
    if self.compiled is None:
      return None
    return {"backend": jax.default_backend(), "loop": self.loop, "xla_options": dict(self.options),
            "precision": self.precision}

  def __call__(self, carry, data, plan):
    """Dispatches the pass; returns ``(carry, sums)`` without waiting for them."""
    self.compile(carry, data, plan)
    if self.loop == "scan":
      return self.compiled(carry, data, plan)
    sums = self.replicate(self._zero_sums())
    if self.donate:
      carry = _copy(carry)  # the caller's carry stays valid
    for b in range(self.num_batches):
      carry, sums = self.compiled(carry, sums, data, plan, np.int32(b))
    return carry, sums


def _batch(data, idx, mask):
  x, y, w = data
  return {"x": x[idx], "y": y[idx], "weight": mask if w is None else mask * w[idx]}


def padded_order(order: np.ndarray, num_batches: int, batch_size: int) -> np.ndarray:
  """``(..., n)`` orders -> ``(..., num_batches, batch_size)`` indices, the last batch
  filled cyclically from the start of the order."""
  lead = order.shape[:-1]
  total = num_batches * batch_size
  filled = np.stack([np.resize(o, total) for o in order.reshape(-1, order.shape[-1])])
  return filled.reshape(lead + (num_batches, batch_size)).astype(np.int32)


def _mask(n: int, num_batches: int, batch_size: int) -> np.ndarray:
  return (np.arange(num_batches * batch_size) < n).astype(np.float32).reshape(num_batches, batch_size)


def host_order(key_words: np.ndarray, epoch: int, n: int) -> np.ndarray:
  """The example order of ``epoch``: a NumPy permutation of ``n`` seeded from the key's
  words and the epoch (``(K, words)`` keys: ``(K, n)`` orders)."""
  if key_words.ndim == 2:
    return np.stack([host_order(k, epoch, n) for k in key_words])
  seed = np.random.SeedSequence([int(v) for v in key_words.ravel()] + [int(epoch)])
  return np.random.default_rng(seed).permutation(n).astype(np.int32)


def key_words(key) -> np.ndarray:
  """A key's (or ``(K,)`` keys') raw words on the host."""
  typed = jax.dtypes.issubdtype(jnp.result_type(key), jax.dtypes.prng_key)
  return np.asarray(jax.random.key_data(key) if typed else key).astype(np.uint32)


class TrainEpoch:
  """One compiled training epoch over ``(x, y)`` placed on the device once.

  Made by :func:`make_train_epoch`; ``epoch_fn(state, key, epoch) -> (state, metrics)``.
  """

  def __init__(self, train_step: Callable, x, y, weight, *, batch_size: int, num_runs,
               shared_order: bool, replicate, split):
    n = len(x)
    self.n, self.batch_size, self.shared_order = n, batch_size, shared_order
    self.num_batches = -(-n // batch_size)
    self.data = replicate((x, y, weight))
    self.mask = replicate(_mask(n, self.num_batches, batch_size))
    self.replicate = replicate
    nb = self.num_batches

    def keys(key, epoch):  # the epoch's per-batch keys (dropout, augmentation)
      return jax.random.split(jax.random.split(jax.random.fold_in(key, epoch))[1], nb)

    self._keys = jax.jit(jax.vmap(keys, in_axes=(0, None)) if num_runs else keys)

    def batch_fn(state, sums, data, plan, b):
      idx, mask, step_keys = plan
      batch = _batch(data, idx[b], mask[b])
      state, m = train_step(state, split(batch), step_keys[b])
      return state, (m if sums is None else _accumulate(sums, m, jnp.sum(batch["weight"]), state.step))

    plan_axes = ((None if shared_order else 0), None, 0)
    self._pass = _Pass(batch_fn, nb, num_runs, plan_axes, replicate, donate=True, step=train_step)

  def order(self, words: np.ndarray, epoch: int) -> np.ndarray:
    """The batch indices of ``epoch`` (host): ``(num_batches, B)`` or ``(K, ...)``."""
    if self.shared_order and words.ndim == 2:
      words = words[0]
    return padded_order(host_order(words, epoch, self.n), self.num_batches, self.batch_size)

  def _plan(self, key, epoch: int, order: np.ndarray):
    return (self.replicate(order), self.mask, self._keys(self.replicate(key), np.int32(epoch)))

  def compile(self, state, key, epoch: int, order: np.ndarray) -> None:
    """Compiles ahead of the first epoch (once)."""
    self._pass.compile(state, self.data, self._plan(key, epoch, order))

  @property
  def compilation(self) -> Optional[dict]:
    """How the epoch was compiled, for a run's record (``None`` before the first call):
    ``{"backend": str, "loop": "scan" | "python", "xla_options": {name: value},
    "precision": str}`` — one compiled loop over the batches or one compiled step per
    batch, the XLA options jaxphys chose for this program on this backend, and the step's
    precision (:mod:`jaxphys.mixed_precision`). Read-only: it changes nothing.

    >>> import jax, optax, numpy as np, jaxphys as jp
    >>> x, y = np.ones((8, 2), np.float32), np.arange(8) % 2
    >>> model, tx = jp.LogisticRegression(), optax.sgd(0.1)
    >>> state = jp.create_train_state(jax.random.key(0), model, tx, x)
    >>> epoch = jp.make_train_epoch(jp.make_train_step(model.apply, jp.binary_cross_entropy, tx), x, y, batch_size=4)
    >>> _ = epoch(state, jax.random.key(1), 0)
    >>> sorted(epoch.compilation), epoch.compilation["loop"], epoch.compilation["precision"]
    (['backend', 'loop', 'precision', 'xla_options'], 'scan', 'float32')
    """
    return self._pass.compilation

  def start(self, state, key, epoch: int, order: np.ndarray):
    """Dispatches the epoch (``order`` from :meth:`order`); returns ``(state, sums)``
    without waiting."""
    return self._pass(state, self.data, self._plan(key, epoch, order))

  def __call__(self, state, key, epoch: int):
    state, sums = self.start(state, key, epoch, self.order(key_words(key), epoch))
    return state, means(sums)


class Evaluation:
  """One compiled evaluation pass over ``(x, y)`` in order, placed on the device once."""

  def __init__(self, eval_step: Callable, x, y, weight, *, batch_size: int, num_runs, replicate, split):
    n = len(x)
    nb = -(-n // batch_size)
    self.data = replicate((x, y, weight))
    self.plan = replicate((padded_order(np.arange(n), nb, batch_size), _mask(n, nb, batch_size)))

    def batch_fn(state, sums, data, plan, b):
      idx, mask = plan
      batch = _batch(data, idx[b], mask[b])
      m = eval_step(state, split(batch))
      return state, (m if sums is None else _accumulate(sums, m, jnp.sum(batch["weight"])))

    self._pass = _Pass(batch_fn, nb, num_runs, None, replicate, donate=False, step=eval_step)

  def compile(self, state) -> None:
    """Compiles ahead of the first pass (once)."""
    self._pass.compile(state, self.data, self.plan)

  @property
  def compilation(self) -> Optional[dict]:
    """As :attr:`TrainEpoch.compilation`, for the evaluation pass."""
    return self._pass.compilation

  def __call__(self, state) -> dict:
    """Dispatches the pass over ``state`` (or params); returns the metric sums."""
    return self._pass(state, self.data, self.plan)[1]


def num_runs_of(state) -> Optional[int]:
  """K for a :class:`TrainState` of K stacked runs, else None."""
  if isinstance(state, TrainState) and jnp.ndim(state.step) == 1:
    return int(state.step.shape[0])
  return None


def run_keys(key, num_runs):
  """One key per run: ``key`` itself for one run or a ``(K,)`` batch, else split in K."""
  if num_runs is None or is_key_batch(key):
    return key
  return jax.random.split(key, num_runs)


def make_train_epoch(train_step: Callable, x: ArrayLike, y: ArrayLike, *, batch_size: int,
                     sample_weight: Optional[ArrayLike] = None,
                     shared_order: bool = False, num_runs: Optional[int] = None,
                     mesh: Optional[Mesh] = None) -> TrainEpoch:
  """The compiled epoch :func:`~jaxphys.fit` runs, for a training loop of your own.

  Puts ``x`` ``(n, ...)``, ``y`` ``(n, ...)`` and ``sample_weight`` ``(n,)`` on the
  device once and returns ``train_epoch(state, key, epoch) -> (state, metrics)``:
  epoch ``epoch`` visits the examples in an order seeded by ``(key, epoch)``, in
  batches of ``batch_size`` (the last one padded and masked), and returns the
  epoch's weighted metric means (floats, ``(K,)`` arrays for ``num_runs=K`` runs,
  for which ``key`` is a ``(K,)`` batch). It compiles on the first call; the state
  passed in stays valid. No input checks: :func:`~jaxphys.fit` does those.

  >>> import jax, optax, numpy as np, jaxphys as jp
  >>> x, y = np.ones((10, 2), np.float32), np.arange(10) % 2
  >>> model, tx = jp.LogisticRegression(), optax.sgd(0.1)
  >>> state = jp.create_train_state(jax.random.key(0), model, tx, x)
  >>> epoch = jp.make_train_epoch(jp.make_train_step(model.apply, jp.binary_cross_entropy, tx), x, y, batch_size=4)
  >>> for e in range(2):
  ...   state, metrics = epoch(state, jax.random.key(1), e)
  >>> int(state.step), sorted(metrics)
  (6, ['accuracy', 'loss', 'objective'])
  """
  replicate, split = placement(mesh, batch_size)
  weight = None if sample_weight is None else np.asarray(sample_weight, np.float32)
  return TrainEpoch(train_step, x, y, weight, batch_size=batch_size, num_runs=num_runs,
                    shared_order=shared_order, replicate=replicate, split=split)
