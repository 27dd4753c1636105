"""Compiled training: a train-state pytree, a pure step, ``fit``, ``evaluate``.

The pieces compose without knowing each other:

* ``apply_fn(variables, x, train=..., rngs=...) -> logits`` is any Flax linen
  ``model.apply`` (or a pure function with that signature);
* ``loss_fn(logits, labels) -> (batch,)`` is any function of :mod:`jaxphys.losses`;
* ``regularizer(params) -> scalar`` is any function of :mod:`jaxphys.regularizers`,
  weighted by ``state.reg_strength``;
* ``tx`` is any optax ``GradientTransformation``;
* ``augment(key, x) -> x`` is any transform of :mod:`jaxphys.augment`.

:func:`make_train_step` turns them into a pure, jit-compiled
``(state, batch, key) -> (state, metrics)``. :func:`fit` runs epochs over data kept
on the device: each epoch is shuffled from ``fold_in(key, epoch)``, the last partial
batch is padded and masked by per-example weights (so every step has the same shape
and nothing recompiles), and per-step metrics are summed on the device, so the host
waits only once per epoch. A state whose leaves carry a leading axis of ``K`` runs
(:func:`create_train_states`) trains all runs as one vmapped program: different
seeds, regularisation strengths or (with ``optax.inject_hyperparams``) learning rates.

Data parallelism is the same code on one device or many: ``fit`` and ``evaluate``
take a :class:`jax.sharding.Mesh` with a ``"batch"`` axis (default: every local device
that divides the batch, :func:`data_parallel_mesh`); the data and the state are
replicated, each batch is split over the mesh, and XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, Mapping, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxphys import metrics as _metrics
from jaxphys.errors import TrainingDiverged

__all__ = [
    "TrainState", "create_train_state", "create_train_states", "classification_metrics",
    "make_train_step", "make_eval_step", "fit", "evaluate", "predict", "data_parallel_mesh",
    "compiler_options",
]

PyTree = Any
Batch = Mapping[str, jax.Array]

# XLA's CPU backend hands dots, convolutions and reductions to YNNPACK by default (jaxlib
# 0.10). Its convolution gradients are slow: the course CNN's training step takes about
# 820 ms there and 150 ms with convolutions left to XLA's Eigen kernels (2-core CPU,
# batch 128; BENCHMARKS.md). Forward-only programs run equally fast either way.
_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type":
                "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
# For programs that convolve, also XLA's memory-minimising schedule: the course CNN's
# step 5 % faster, the SUSY network's 2-7 % slower, so only there (BENCHMARKS.md).
_CPU_CONV_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
# For programs with under 1e8 FLOPs of matrix products per step (and no convolution),
# dots to XLA's own code as well: softmax regression and small networks train 1.1-1.4x
# faster; larger ones (the 512-512 MLP, the SUSY network at batch 100) are faster on
# YNNPACK (benchmarks/dots.py, BENCHMARKS.md).
_SMALL_DOT_FLOPS = 1e8
_CPU_SMALL_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}


def _cpu_group(name: str) -> dict:
  return {"all": _CPU_OPTIONS, "conv": _CPU_CONV_OPTIONS, "small": _CPU_SMALL_OPTIONS}[name]


@functools.lru_cache(maxsize=None)
def _accepted(group: str) -> bool:
  """Whether the installed jaxlib knows the CPU option group (probed once per group)."""
  try:
    jax.jit(lambda v: v + 1).lower(np.float32(0)).compile(dict(_cpu_group(group)))
  except Exception:  # noqa: BLE001 (jax's runtime error class differs across versions)
    return False
  return True


def compiler_options(backend: Optional[str] = None, *, convolutions: bool = False,
                     dot_flops: Optional[float] = None) -> dict:
  """The XLA compiler options jaxphys compiles its training steps and epochs with.

  On CPU: XLA's default library fusions without the convolutions (dots and reductions
  stay on YNNPACK, convolutions go to Eigen); for a program that convolves, XLA's
  memory-minimising operation schedule; for one without convolutions whose matrix
  products take under 1e8 FLOPs per step, dots on XLA's own code too. Each only if the
  installed jaxlib knows it. ``{}`` on other backends. Give them to a step you compile
  yourself: ``jax.jit(step, compiler_options=jaxphys.compiler_options(convolutions=True))``.

  Args:
    backend: ``"cpu"``, ``"gpu"``, ``"tpu"``; default ``jax.default_backend()``.
    convolutions: whether the program convolves (:func:`fit` and :func:`evaluate` look).
    dot_flops: FLOPs of the program's matrix products per step (:func:`fit` and
      :func:`evaluate` count them); ``None``: not considered.
  """
  if (backend or jax.default_backend()) != "cpu":
    return {}
  groups = ["all"]
  if convolutions:
    groups.append("conv")
  elif dot_flops is not None and dot_flops < _SMALL_DOT_FLOPS:
    groups.append("small")
  out = {}
  for group in groups:  # a later group's value replaces an earlier one's
    if _accepted(group):
      out.update(_cpu_group(group))
  return out


def _program_options(jaxpr) -> dict:
  """:func:`compiler_options` for a program whose step is ``jaxpr``, as :func:`fit` and
  :func:`evaluate` pick them: by whether it convolves and its matrix products' FLOPs."""
  return compiler_options(convolutions=_uses_primitive(jaxpr, "conv_general_dilated"),
                          dot_flops=_dot_flops(jaxpr))


def _jit(fn: Callable, options: dict, **kwargs) -> Callable:
  """``jax.jit`` with XLA compiler ``options`` (none passed when empty)."""
  return jax.jit(fn, **kwargs, **({"compiler_options": options} if options else {}))


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as a pytree of arrays.

  Attributes:
    step: ``()`` int32 number of optimiser steps taken (``(K,)`` for K runs).
    params: the model parameters (``variables["params"]`` of a linen module).
    opt_state: the optax state of ``tx``.
    reg_strength: ``()`` float32 multiplier of the regulariser (``(K,)`` for K runs).
  """

  step: jax.Array
  params: PyTree
  opt_state: optax.OptState
  reg_strength: jax.Array


def create_train_state(key, model, tx: optax.GradientTransformation, example_x,
                       reg_strength: float = 0.0) -> TrainState:
  """Initialises ``model`` from ``key`` on the shape of ``example_x`` (``(batch, ...)``)."""
  example_x = jnp.asarray(example_x[:1])
  params = model.init({"params": key}, example_x, train=False)["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    reg_strength=jnp.asarray(reg_strength, jnp.float32))


def create_train_states(keys, model, tx: optax.GradientTransformation, example_x,
                        reg_strength=0.0) -> TrainState:
  """``K`` independent states stacked on a leading axis, one per key in ``keys`` (``(K,)``).

  ``reg_strength`` is a scalar or ``(K,)`` (a sweep). Learning-rate sweeps: build ``tx``
  with ``optax.inject_hyperparams`` and set ``state.opt_state.hyperparams``.
  """
  num_runs = _num_keys(keys)
  strengths = jnp.broadcast_to(jnp.asarray(reg_strength, jnp.float32), (num_runs,))
  return jax.vmap(lambda k, r: create_train_state(k, model, tx, example_x, r))(keys, strengths)


def _num_keys(keys) -> int:
  if not _is_key_batch(keys):
    raise ValueError(f"keys must be a batch of PRNG keys, got shape {jnp.shape(keys)}")
  return jnp.shape(keys)[0]


def classification_metrics(logits: jax.Array, labels: jax.Array, weight: jax.Array) -> dict:
  """Weighted accuracy: ``(batch,)`` binary logits (cut at 0) or ``(batch, C)`` arg-max."""
  correct = _metrics.predict_classes(logits, 0.0) == _metrics._class_labels(labels)
  return {"accuracy": jnp.sum(weight * correct) / jnp.maximum(jnp.sum(weight), 1)}


def _weight(batch: Batch) -> jax.Array:
  w = batch.get("weight")
  return jnp.ones(jnp.shape(batch["y"])[:1], jnp.float32) if w is None else w


def make_train_step(apply_fn: Callable, loss_fn: Callable, tx: optax.GradientTransformation,
                    regularizer: Optional[Callable] = None, augment: Optional[Callable] = None,
                    metrics_fn: Callable = classification_metrics) -> Callable:
  """Builds the pure, jit-compiled step ``(state, batch, key) -> (state, metrics)``.

  The objective is ``sum(w * loss_fn(logits, y)) / sum(w) + state.reg_strength *
  regularizer(params)``, with per-example weights ``w = batch["weight"]`` (default 1;
  0 masks padding). ``key`` feeds the augmentation and the ``"dropout"`` rng.

  :func:`fit` compiles it with :func:`compiler_options`; called directly it compiles
  with XLA's defaults, which on CPU make convolutional models several times slower (the
  course CNN: 820 against 150 ms per step). In a loop of your own, compile it as
  ``jax.jit(step, compiler_options=compiler_options(convolutions=True))`` (``False``
  for a model without convolutions).

  Args:
    apply_fn: ``apply_fn({"params": p}, x, train=True, rngs={"dropout": k})`` -> logits.
    loss_fn: ``(logits, labels) -> (batch,)`` per-example loss.
    tx: optax transformation.
    regularizer: ``params -> scalar`` penalty, or None.
    augment: ``(key, x) -> x`` on-device augmentation of the batch, or None.
    metrics_fn: ``(logits, labels, weight) -> dict`` of weighted batch means.

  Returns:
    ``step(state, batch, key)`` with ``batch = {"x": (B, ...), "y": (B, ...),
    "weight": (B,) optional}``; metrics hold ``loss`` (data term), ``objective``
    (with the penalty) and those of ``metrics_fn``, each a scalar.
  """

  def train_step(state: TrainState, batch: Batch, key) -> tuple[TrainState, dict]:
    x, y, w = batch["x"], batch["y"], _weight(batch)
    aug_key, dropout_key = jax.random.split(key)
    if augment is not None:
      x = augment(aug_key, x)

    def objective(params):
      logits = apply_fn({"params": params}, x, train=True, rngs={"dropout": dropout_key})
      loss = jnp.sum(w * loss_fn(logits, y)) / jnp.maximum(jnp.sum(w), 1)
      penalty = 0.0 if regularizer is None else state.reg_strength * regularizer(params)
      return loss + penalty, (loss, logits)

    (obj, (loss, logits)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          opt_state=opt_state)
    return state, {"loss": loss, "objective": obj, **metrics_fn(logits, y, w)}

  return jax.jit(train_step)


def make_eval_step(apply_fn: Callable, loss_fn: Callable,
                   metrics_fn: Callable = classification_metrics) -> Callable:
  """Builds the pure ``(params, batch) -> metrics`` evaluation step (``train=False``)."""

  def eval_step(params: PyTree, batch: Batch) -> dict:
    w = _weight(batch)
    logits = apply_fn({"params": params}, batch["x"], train=False)
    loss = jnp.sum(w * loss_fn(logits, batch["y"])) / jnp.maximum(jnp.sum(w), 1)
    return {"loss": loss, **metrics_fn(logits, batch["y"], w)}

  return eval_step


# ----------------------------------------------------------------------------- epochs


def _batch_plan(order, n: int, batch_size: int):
  """``(num_batches, batch_size)`` example indices and 0/1 weights; last batch padded.

  ``order``: ``(n,)`` the examples' order, or None for ``0 .. n - 1``.
  """
  num_batches = -(-n // batch_size)
  order = jnp.arange(n) if order is None else order
  total = num_batches * batch_size
  idx = jnp.pad(order, (0, total - n)).reshape(num_batches, batch_size)
  weight = (jnp.arange(total) < n).astype(jnp.float32).reshape(num_batches, batch_size)
  return idx, weight


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


def _zeros_like(shapes) -> dict:
  return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _means(sums: dict) -> dict:
  sums = jax.device_get(sums)
  sums.pop("first_nonfinite_step")
  count = sums.pop("count")
  return {k: v / np.maximum(count, 1) for k, v in sums.items()}


class _EpochRunner:
  """Compiles and runs one pass over device-resident data, single or vmapped.

  ``loop="scan"`` runs the whole epoch as one compiled loop (best for small models);
  ``loop="python"`` dispatches one compiled batch at a time without waiting for it.
  ``loop="auto"`` picks ``"python"`` on CPU when the step has a convolution and
  ``"scan"`` otherwise: XLA's CPU convolution gradients are far slower inside a loop
  (the course CNN on a 2-core CPU, with :func:`compiler_options`: 9 against 750
  images/s). Either way the host synchronises only when the epoch's metric sums are read.
  """

  def __init__(self, batch_fn, plan_fn, num_batches, num_runs, loop, donate, plan_axes=0,
               xla_options=None):
    if loop not in ("auto", "scan", "python"):
      raise ValueError(f"loop must be 'auto', 'scan' or 'python', got {loop!r}")
    if xla_options is not None and not isinstance(xla_options, Mapping):
      raise ValueError(f"xla_options must be a dict of XLA compiler options, got {xla_options!r}")
    if num_runs is not None:
      # Per-run state and sums; shared data and batch index; ``plan_fn`` gives the plan
      # with a run axis where ``plan_axes`` (an ``in_axes`` prefix) says so.
      batch_fn = jax.vmap(batch_fn, in_axes=(0, 0, None, None, plan_axes, None))
    self.batch_fn, self.plan_fn = batch_fn, plan_fn
    self.num_batches, self.loop = num_batches, loop
    self.donate = donate
    # The programs' XLA options: the user's, or (None until _analyse) _program_options.
    self.options = None if xla_options is None else dict(xla_options)
    self.compiled = None
    self.compile_seconds = 0.0
    self._metric_shapes = None
    self.convolves = False  # whether a batch applies a convolution (set by _analyse)

  def _analyse(self, carry, x, y, key) -> None:
    """Traces one batch abstractly (once): the metrics' structure, whether the batch
    convolves, the loop and the compiler options to use."""
    plan = jax.eval_shape(self.plan_fn, key)
    closed, shapes = jax.make_jaxpr(self.batch_fn, return_shape=True)(carry, None, x, y, plan, 0)
    self._metric_shapes = shapes[1]
    self.convolves = _uses_primitive(closed.jaxpr, "conv_general_dilated")
    if self.loop == "auto":
      self.loop = "python" if self.convolves and jax.default_backend() == "cpu" else "scan"
    if self.options is None:
      self.options = _program_options(closed.jaxpr)

  def _init_sums(self) -> dict:
    sums = _zeros_like(self._metric_shapes)
    sums["count"] = jnp.zeros_like(next(iter(sums.values())))
    # The optimiser step at which the objective first became non-finite (-1: never).
    sums["first_nonfinite_step"] = jnp.full(sums["count"].shape, -1, jnp.int32)
    return sums

  def _scan_epoch(self, carry, x, y, key):
    plan = self.plan_fn(key)
    body = lambda b, c: self.batch_fn(c[0], c[1], x, y, plan, b)
    return jax.lax.fori_loop(0, self.num_batches, body, (carry, self._init_sums()))

  def _compile(self, carry, x, y, key):
    start = time.perf_counter()
    self._analyse(carry, x, y, key)
    donate = (0,) if self.donate else ()
    if self.loop == "scan":
      self.compiled = _jit(self._scan_epoch, self.options,
                           donate_argnums=donate).lower(carry, x, y, key).compile()
    else:
      # The epoch's plan and zero sums, placed like the key (replicated over a mesh);
      # the step is compiled for them there.
      begin = lambda key: (self.plan_fn(key), self._init_sums())
      where = getattr(jax.tree_util.tree_leaves(key)[0], "sharding", None)
      begin_c = jax.jit(begin, out_shardings=where).lower(key).compile()
      plan, sums = jax.tree_util.tree_map(
          lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
          jax.eval_shape(begin, key), begin_c.output_shardings)
      donate = (0, 1) if self.donate else ()
      step_c = _jit(self.batch_fn, self.options, donate_argnums=donate).lower(
          carry, sums, x, y, plan, np.int32(0)).compile()
      self.compiled = (begin_c, step_c)
    self.compile_seconds = time.perf_counter() - start

  def compile(self, carry, x, y, key) -> None:
    """Compiles ahead of time (once); ``compile_seconds`` records how long it took."""
    if self.compiled is None:
      self._compile(carry, x, y, key)

  def __call__(self, carry, x, y, key):
    self.compile(carry, x, y, key)
    if self.loop == "scan":
      return self.compiled(carry, x, y, key)
    begin_c, step_c = self.compiled
    plan, sums = begin_c(key)
    for b in range(self.num_batches):
      carry, sums = step_c(carry, sums, x, y, plan, np.int32(b))
    return carry, sums


def _equations(jaxpr):
  """The equations of ``jaxpr`` and of the jaxprs nested in them (a loop body once, not per
  iteration)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        sub = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(sub, "eqns"):
          yield from _equations(sub)


def _uses_primitive(jaxpr, name: str) -> bool:
  """Whether ``jaxpr`` or any jaxpr nested in its equations applies primitive ``name``."""
  return any(eqn.primitive.name == name for eqn in _equations(jaxpr))


def _dot_flops(jaxpr) -> int:
  """FLOPs (2 per multiply-add) of the matrix products (``dot_general``) in ``jaxpr``."""
  flops = 0
  for eqn in _equations(jaxpr):
    if eqn.primitive.name == "dot_general":
      (contracting, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      flops += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contracting)
  return flops


def _check_data(x, y, batch_size: int, what: str = "data"):
  if batch_size is None or int(batch_size) <= 0:
    raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
  n = len(x)
  if len(y) != n:
    raise ValueError(f"{what}: x has {n} examples but y has {len(y)}")
  if n == 0:
    raise ValueError(f"{what}: no examples")
  return n


def _train_runner(train_step, n, batch_size, num_runs, loop, split, shared_order=False,
                  xla_options=None):
  num_batches = -(-n // batch_size)

  def plan_fn(key_and_order):  # the epoch's key and shuffle (see _shuffle)
    key, order = key_and_order
    idx, w = _batch_plan(order, n, batch_size)
    return idx, w, jax.random.split(jax.random.split(key)[1], num_batches)

  plan_axes = 0
  if num_runs is not None:
    # Per-run keys; with one shared order, one batch plan (each batch gathered once).
    plan_axes = (None, None, 0) if shared_order else 0
    plan_fn = jax.vmap(plan_fn, in_axes=((0, None if shared_order else 0),), out_axes=plan_axes)

  def batch_fn(state, sums, x, y, plan, b):
    idx, w, keys = plan
    i, wb = idx[b], w[b]
    state, m = train_step(state, split({"x": x[i], "y": y[i], "weight": wb}), keys[b])
    return state, (m if sums is None else _accumulate(sums, m, jnp.sum(wb), state.step))

  return _EpochRunner(batch_fn, plan_fn, num_batches, num_runs, loop, donate=True, plan_axes=plan_axes,
                      xla_options=xla_options)


def _eval_runner(eval_step, n, batch_size, num_runs, loop, split, xla_options=None):
  num_batches = -(-n // batch_size)

  def batch_fn(params, sums, x, y, plan, b):
    idx, w = plan
    i, wb = idx[b], w[b]
    m = eval_step(params, split({"x": x[i], "y": y[i], "weight": wb}))
    return params, (m if sums is None else _accumulate(sums, m, jnp.sum(wb)))

  # Evaluation visits examples in order, the same for every run; the runner passes the
  # params where training passes a key, so the plan ignores its argument.
  plan_fn = lambda params: _batch_plan(None, n, batch_size)
  return _EpochRunner(batch_fn, plan_fn, num_batches, num_runs, loop, donate=False, plan_axes=None,
                      xla_options=xla_options)


# ------------------------------------------------------------------ data parallelism


def data_parallel_mesh(devices=None, batch_size: Optional[int] = None) -> Mesh:
  """A one-axis mesh named ``"batch"`` over ``devices`` (default: ``jax.local_devices()``).

  With ``batch_size``, only the first ``d`` devices, ``d`` the largest count that
  divides ``batch_size``. Multi-host: call ``jax.distributed.initialize()`` in every
  process, load the same data in each, and pass ``data_parallel_mesh(jax.devices())``
  to :func:`fit`; the data and state are then replicated on every host's devices.
  """
  devices = list(jax.local_devices() if devices is None else devices)
  if not devices:
    raise ValueError("data_parallel_mesh: no devices")
  if batch_size is not None:
    devices = devices[:max(d for d in range(1, len(devices) + 1) if batch_size % d == 0)]
  return Mesh(np.array(devices), ("batch",))


def _placement(mesh: Optional[Mesh], *batch_sizes: int):
  """``(replicate, split)`` for ``mesh``: ``replicate(tree)`` puts arrays on every device,
  ``split(tree)`` (inside compiled code) constrains a batch's leading axis to the mesh."""
  if mesh is None:
    mesh = data_parallel_mesh(batch_size=math.gcd(*batch_sizes))
  if "batch" not in mesh.axis_names:
    raise ValueError(f"mesh needs an axis named 'batch', got axes {mesh.axis_names}")
  parts = mesh.shape["batch"]
  for b in batch_sizes:
    if b % parts:
      raise ValueError(f"batch size {b} is not divisible by the {parts} devices of the mesh's 'batch' axis")
  replicated = NamedSharding(mesh, PartitionSpec())
  batch = NamedSharding(mesh, PartitionSpec("batch"))

  def put(a):
    if mesh.is_multi_process:  # every process holds all of ``a``; build the global array
      if jax.dtypes.issubdtype(jnp.result_type(a), jax.dtypes.prng_key):
        return jax.random.wrap_key_data(put(jax.random.key_data(a)), impl=jax.random.key_impl(a))
      return jax.make_array_from_callback(np.shape(a), replicated, lambda idx: np.asarray(a)[idx])
    return jax.device_put(a, replicated)

  def replicate(tree):
    return jax.tree_util.tree_map(put, tree)

  def split(tree):
    return jax.tree_util.tree_map(lambda a: jax.lax.with_sharding_constraint(a, batch), tree)

  return replicate, split


def evaluate(eval_step: Callable, params: PyTree, x, y, *, batch_size: int = 1024,
             num_runs: Optional[int] = None, loop: str = "auto", mesh: Optional[Mesh] = None,
             xla_options: Optional[dict] = None) -> dict:
  """Metrics of ``eval_step`` (see :func:`make_eval_step`) averaged over ``(x, y)``.

  ``x``: ``(n, ...)``, ``y``: ``(n, ...)``. With ``num_runs=K``, ``params`` carry a
  leading axis of K runs and each metric is a ``(K,)`` array; otherwise a float.
  ``mesh``, ``xla_options``: see :func:`fit`.
  """
  n = _check_data(x, y, batch_size, "evaluate")
  replicate, split = _placement(mesh, batch_size)
  runner = _eval_runner(eval_step, n, batch_size, num_runs, loop, split, xla_options)
  x, y, params = replicate((x, y, params))
  _, sums = runner(params, x, y, params)
  return {k: (float(v) if num_runs is None else v) for k, v in _means(sums).items()}


def predict(apply_fn: Callable, params: PyTree, x, *, batch_size: int = 1024) -> jax.Array:
  """Logits of the model on ``x`` (``(n, ...)`` -> ``(n, ...)``), ``train=False``, in batches.

  Pure and jit-able (``batch_size`` static); vmap over ``params`` for several runs.
  """
  x = jnp.asarray(x)
  n = x.shape[0]
  num_batches = -(-n // batch_size)
  padded = jnp.pad(x, [(0, num_batches * batch_size - n)] + [(0, 0)] * (x.ndim - 1))
  chunks = padded.reshape((num_batches, batch_size) + x.shape[1:])
  out = jax.lax.map(lambda xb: apply_fn({"params": params}, xb, train=False), chunks)
  return out.reshape((num_batches * batch_size,) + out.shape[2:])[:n]


def fit(state: TrainState, train_step: Callable, x, y, *, key, epochs: int, batch_size: int,
        eval_step: Optional[Callable] = None, eval_data=None, eval_batch_size: int = 1024,
        loop: str = "auto", initial_epoch: int = 0, progress: bool = True,
        callback: Optional[Callable] = None, mesh: Optional[Mesh] = None,
        checkpointer=None, resume: bool = False,
        shared_order: bool = False, xla_options: Optional[dict] = None) -> tuple[TrainState, dict]:
  """Trains ``state`` for epochs ``initial_epoch .. epochs - 1`` over ``(x, y)``.

  The data go to the device once. Epoch ``e`` shuffles with ``fold_in(key, e)``, so a
  run resumed from the state after epoch ``e - 1`` with ``initial_epoch=e`` continues
  exactly. ``state`` may hold ``K`` stacked runs (:func:`create_train_states`); then
  ``key`` is one key (split into K) or ``(K,)`` keys, and every metric gets a trailing
  ``K`` axis. The input ``state`` is left intact.

  Args:
    state: initial :class:`TrainState`.
    train_step: from :func:`make_train_step`.
    x, y: ``(n, ...)`` inputs and ``(n, ...)`` labels (NumPy or JAX arrays).
    key: PRNG key for shuffling, dropout and augmentation.
    epochs: index one past the last epoch to run.
    batch_size: examples per step; the last partial batch is padded and masked.
    eval_step: from :func:`make_eval_step`; with ``eval_data=(x_eval, y_eval)`` it is
      run after every epoch.
    loop: ``"scan"`` (the epoch is one compiled loop), ``"python"`` (one compiled,
      asynchronously dispatched step per batch) or ``"auto"`` (``"python"`` for
      convolutional models on CPU, where it is much faster, else ``"scan"``).
    progress: show a progress bar (stderr) with loss and accuracy.
    callback: ``callback(epoch, state, history)`` after every epoch.
    mesh: data parallelism: a mesh with a ``"batch"`` axis whose size divides
      ``batch_size`` and ``eval_batch_size``; default :func:`data_parallel_mesh` over the
      local devices that divide both (one CPU: no parallelism, the same code).
    checkpointer: a :class:`jaxphys.checkpoint.Checkpointer`: the state, key and history
      are saved after every ``checkpointer.every`` epochs and after the last.
    resume: continue from the checkpointer's latest checkpoint, if any (its epochs count
      as done, its history is kept); the result is bit for bit that of an
      uninterrupted run with the same key on the same machine.
    shared_order: with K runs, every run visits the examples in run 0's order (the
      order run 0 gets without this flag); dropout and augmentation keys stay per run.
      Common random numbers for a hyperparameter sweep, and faster: one shuffle and one
      gather per batch serve all runs (see BENCHMARKS.md).
    xla_options: XLA compiler options for the training and evaluation programs, in
      place of :func:`compiler_options`, which ``fit`` otherwise picks per program (on
      CPU by whether it convolves and by its matrix products' FLOPs); ``{}``: XLA's
      defaults. For a choice measured on your model (``benchmarks/dots.py``).

  Raises:
    jaxphys.errors.TrainingDiverged: the objective or the parameters stopped being
      finite; raised after the epoch, before any checkpoint of it is written.

  Returns:
    ``(state, history)``; ``history`` maps ``train_<metric>`` and ``eval_<metric>`` to
    ``(epochs_run,)`` (or ``(epochs_run, K)``) NumPy arrays, ``epoch_seconds`` to the
    training time of each epoch, ``compile_seconds`` to the compile time (float) and
    ``loop`` to the loop used.
  """
  if epochs is None or int(epochs) < 0 or int(initial_epoch) < 0:
    raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
  n = _check_data(x, y, batch_size, "fit")
  num_runs = int(state.step.shape[0]) if jnp.ndim(state.step) == 1 else None
  keys = key
  if num_runs is not None:
    keys = key if _is_key_batch(key) else jax.random.split(key, num_runs)
  if eval_data is not None and eval_step is None:
    raise ValueError("eval_data needs eval_step (see make_eval_step)")
  history: dict[str, list] = {}
  if resume:
    if checkpointer is None:
      raise ValueError("resume=True needs a checkpointer")
    restored = checkpointer.restore(state, key)
    if restored is not None:
      initial_epoch, state, done = restored
      history = {k: list(v) for k, v in done.items()}
  replicate, split = _placement(mesh, batch_size, *([eval_batch_size] if eval_data is not None else []))
  x, y = replicate((x, y))
  runner = _train_runner(train_step, n, batch_size, num_runs, loop, split, shared_order, xla_options)
  evaluator = None
  if eval_data is not None:
    x_eval, y_eval = eval_data
    _check_data(x_eval, y_eval, eval_batch_size, "eval_data")
    x_eval, y_eval = replicate((x_eval, y_eval))
    evaluator = _eval_runner(eval_step, len(x_eval), eval_batch_size, num_runs, loop, split, xla_options)

  fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)) if num_runs else jax.random.fold_in)
  state = replicate(jax.tree_util.tree_map(jnp.copy, state))  # the runner donates its input
  keys = replicate(keys)

  from jaxphys import _shuffle  # here: it imports Numba, which only training needs

  def plan(epoch):  # the epoch's keys now; its example order when the result is called
    epoch_keys = fold(keys, epoch)
    order_keys = epoch_keys[0] if num_runs is not None and shared_order else epoch_keys
    finish = _shuffle.start(order_keys, n)
    return lambda: replicate((epoch_keys, finish()))

  upcoming = plan(initial_epoch)()
  try:
    runner.compile(state, x, y, upcoming)
  except (TypeError, ValueError, flax.errors.FlaxError) as e:  # shapes the model rejects
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise ValueError(f"fit: the model and train_step do not accept inputs {tuple(x.shape[1:])} "
                     f"and labels {tuple(y.shape[1:])} per example: {first}") from e
  if evaluator is not None:
    evaluator.compile(state.params, x_eval, y_eval, state.params)
  bar = _progress(range(initial_epoch, epochs), progress)
  for epoch in bar:
    start = time.perf_counter()
    # The next epoch's shuffle: its device part (key splits) before this epoch is
    # dispatched, as the device runs one program at a time; its host part while it runs.
    following = plan(epoch + 1) if epoch + 1 < epochs else None
    state, sums = runner(state, x, y, upcoming)
    if following is not None:
      upcoming = following()
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    sums = jax.device_get(sums)
    _check_finite(epoch, sums, state.params, num_runs, history)
    record = {f"train_{k}": v for k, v in _means(sums).items()}
    record["epoch_seconds"] = seconds
    if evaluator is not None:
      _, eval_sums = evaluator(state.params, x_eval, y_eval, state.params)
      record.update({f"eval_{k}": v for k, v in _means(eval_sums).items()})
    for k, v in record.items():
      history.setdefault(k, []).append(v)
    if progress:
      bar.set_postfix({k.replace("accuracy", "acc"): f"{np.mean(v):.4f}" for k, v in record.items()
                       if k.endswith(("_loss", "_accuracy"))})
    if checkpointer is not None and ((epoch + 1) % checkpointer.every == 0 or epoch + 1 == epochs):
      checkpointer.save(epoch + 1, state, key, history)
    if callback is not None:
      callback(epoch, state, history)
  out = {k: np.asarray(v) for k, v in history.items()}
  out["compile_seconds"] = runner.compile_seconds + (evaluator.compile_seconds if evaluator else 0.0)
  out["loop"] = runner.loop
  return state, out


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


def _is_key_batch(key) -> bool:
  key = key if isinstance(key, jax.Array) else jnp.asarray(key)
  typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
  return key.ndim == (1 if typed else 2)


def _progress(iterable, enabled: bool):
  if not enabled:
    return iterable
  from tqdm.auto import tqdm
  return tqdm(iterable, unit="epoch", dynamic_ncols=True, leave=True)
