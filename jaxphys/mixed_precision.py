"""Mixed precision: which dtype a model's products take, for any Flax model, in the trainer.

A precision policy, in the spirit of DeepMind's jmp and Keras's mixed precision, names
the dtype of the operands of the model's matrix products and convolutions; everything
else stays in float32:

* parameters, optimiser state, the loss, the metrics and the model's other collections
  (BatchNorm's running statistics) are float32;
* every float32 matrix product and convolution of ``apply_fn`` (``dot_general``,
  ``conv_general_dilated``, those in nested ``jit`` calls too) casts its two operands to
  the *compute* dtype and returns float32 (``preferred_element_type``), so the sums
  accumulate in float32; its two backward products do the same with the cotangent. A
  convolution that oneDNN computes (below) in bfloat16 rounds its float32 sums to
  bfloat16 before returning them, as Keras's ``mixed_bfloat16`` and PyTorch's autocast
  keep convolution outputs: what reads them moves half the bytes;
* activations, biases, normalisations and the logits stay float32, and so do the
  gradients with respect to the float32 parameters.

``precision="float32"`` leaves the model's arithmetic as it is; ``precision="bfloat16"``
takes bfloat16 operands. In both, on the CPU backend, stride-1 2-D convolutions run
through oneDNN (a private detail, equal to XLA's convolutions to float32 rounding;
``JAXPHYS_ONEDNN=0`` turns it off). ``precision=None``, the default, is
:func:`default_precision` of the model, decided when the step is traced: on a CPU that
computes bfloat16 natively (AVX-512 BF16), bfloat16 for a model with such a convolution
and for one whose matrix products are wide (:func:`has_wide_products`: the SUSY network
at large batches, a 512-512 MLP), where it trains faster (BENCHMARKS.md, with the
accuracy in both); float32 for every other model and backend. The choice is made for
each traced program, from its shapes: a model trained at batch 100 in float32 may be
evaluated at batch 1024 in bfloat16. Pass the name to :func:`jaxphys.make_train_step`,
:func:`jaxphys.make_eval_step` and :func:`jaxphys.predict` (which computes in float32
unless given) to fix it; no model needs changes; a step's ``precision`` attribute (and
a training epoch's ``compilation``) says which ran.
Products inside other higher-order primitives (``scan``, ``remat``, ``custom_jvp``
functions) run as the model wrote them.
The bfloat16 products support reverse-mode derivatives of any order, not forward mode
(``jax.jvp``, ``jax.jacfwd``): take those in float32.

>>> import jax, optax, jaxphys as jp
>>> model, tx = jp.MLP((8, 3)), optax.adam(1e-3)
>>> state = jp.create_train_state(jax.random.key(0), model, tx, jax.numpy.ones((1, 4)))
>>> step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision="bfloat16")
>>> state, m = step(state, {"x": jax.numpy.ones((2, 4)), "y": jax.numpy.array([0, 2])}, jax.random.key(1))
>>> state.params["Dense_0"]["kernel"].dtype, m["loss"].dtype
(dtype('float32'), dtype('float32'))
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, Union

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np

from jaxphys import _mixed_products, _onednn

__all__ = ["PRECISIONS", "Policy", "get_policy", "default_precision", "has_wide_products",
           "cast_floating", "apply_in_precision"]

#: The precision names the trainer accepts (``None`` means :func:`default_precision`).
PRECISIONS = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class Policy:
  """The dtypes of one precision: where parameters live, what the model's products
  take, and what comes out of the model.

  Attributes:
    name: ``"float32"`` or ``"bfloat16"``.
    param_dtype: dtype of the parameters, optimiser state and model state (float32).
    compute_dtype: dtype the operands of the model's products are cast to.
    output_dtype: dtype of the model's outputs, as the loss sees them (float32).

  >>> p = get_policy("bfloat16")
  >>> p.compute_dtype, p.output_dtype
  (dtype(bfloat16), dtype('float32'))
  """

  name: str
  param_dtype: Any
  compute_dtype: Any
  output_dtype: Any

  @property
  def is_identity(self) -> bool:
    """Whether the policy changes nothing (compute dtype float32).

    >>> get_policy("float32").is_identity, get_policy("bfloat16").is_identity
    (True, False)
    """
    return self.compute_dtype == jnp.float32

  def cast_to_compute(self, tree: Any) -> Any:
    """The floating leaves of ``tree`` in ``compute_dtype`` (any shapes; others kept).

    >>> get_policy("bfloat16").cast_to_compute({"w": jax.numpy.ones(2)})["w"].dtype
    dtype(bfloat16)
    """
    return cast_floating(tree, self.compute_dtype)

  def cast_to_output(self, tree: Any) -> Any:
    """The floating leaves of ``tree`` in ``output_dtype`` (any shapes; others kept).

    >>> get_policy("bfloat16").cast_to_output(jax.numpy.ones(2, "bfloat16")).dtype
    dtype('float32')
    """
    return cast_floating(tree, self.output_dtype)


# Matrix products that bfloat16 operands speed up on a CPU with AVX-512 BF16: at least
# 128 rows (examples) and 256 contracted and output features; the model's products of that
# shape must carry at least _WIDE_FLOPS FLOPs per forward pass and at least half of its
# product FLOPs (BENCHMARKS.md, "bfloat16 by default for wide matrix products").
_WIDE_ROWS, _WIDE_FEATURES, _WIDE_FLOPS = 128, 256, 1e8


def has_wide_products(jaxpr: Union[jax.extend.core.Jaxpr, jax.extend.core.ClosedJaxpr]) -> bool:
  """Whether the matrix products of ``jaxpr`` (a model's forward pass, traced by
  ``jax.make_jaxpr``) are wide enough for :func:`default_precision`'s ``wide_products``.

  True where the ``dot_general`` products with at least 128 rows (free left-hand
  elements: the examples of a Dense layer) and at least 256 contracted and 256 output
  features take at least 1e8 FLOPs in all and at least half the FLOPs of the products
  the precision rewrite replaces (float32 products outside ``scan``, ``remat`` and
  ``custom_jvp``; convolutions included): the 4 x 300 SUSY network from batch 186 on, a
  512-512 MLP on MNIST at batch 128. Smaller or narrower products gained nothing
  reliable from bfloat16 operands on the CPU measured; the casts cost about as much as
  the products save. Inside ``vmap`` (a sweep) the trace, and so the rule, sees one run.

  >>> import jax, jaxphys as jp
  >>> mlp = jp.MLP((512, 512, 10))
  >>> v = mlp.init(jax.random.key(0), jax.numpy.ones((1, 784)))
  >>> trace = lambda n: jax.make_jaxpr(mlp.apply)(v, jax.numpy.ones((n, 784)))
  >>> has_wide_products(trace(128)), has_wide_products(trace(64))
  (True, False)

  Raises:
    TypeError: ``jaxpr`` is not a jaxpr (one line).
  """
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)  # ClosedJaxpr -> Jaxpr
  if not hasattr(jaxpr, "eqns"):
    raise TypeError(f"jaxpr must be a jaxpr from jax.make_jaxpr, got {type(jaxpr).__name__}")
  wide = other = 0
  for kind, batch, rows, inner, columns in _mixed_products.product_shapes(jaxpr):
    flops = 2 * batch * rows * inner * columns
    if kind == "dot" and rows >= _WIDE_ROWS and min(inner, columns) >= _WIDE_FEATURES:
      wide += flops
    else:
      other += flops
  return wide >= max(_WIDE_FLOPS, other)


def _cpu_computes_bfloat16() -> bool:
  """Whether this backend is a CPU with native bfloat16 products (AVX-512 BF16)."""
  return jax.default_backend() == "cpu" and _onednn._cpu_has_bfloat16()


def default_precision(convolves: bool = False, wide_products: bool = False) -> str:
  """The precision ``None`` stands for, on the current backend, for a model that does or
  does not convolve, and whose matrix products are or are not wide.

  ``"bfloat16"`` on a CPU that computes bfloat16 products natively (AVX-512 BF16) for

  * a model with a float32 2-D convolution that the CPU backend computes through
    oneDNN (stride 1, no dilation, one group: ``convolves``; ``JAXPHYS_ONEDNN`` not
    ``0``): bfloat16 trained the course CNN and the ResNet faster than float32;
  * a model whose matrix products are wide (:func:`has_wide_products` of its traced
    forward pass: ``wide_products``): bfloat16 trained the SUSY network at batch 512
    and 1024 and the 512-512 MLP faster than float32.

  The accuracy of each, against float32 over several seeds, is in BENCHMARKS.md ("Mixed
  precision" and after). ``"float32"`` otherwise: smaller or narrower products (the
  SUSY network at batch 100, softmax regression: bfloat16 is no faster there), GPUs and
  TPUs (not measured). Like every bfloat16 step, such a default step supports
  reverse-mode derivatives only: take forward-mode ones (``jax.jvp``) with
  ``precision="float32"``.

  Raises:
    TypeError: ``convolves`` or ``wide_products`` not a bool (one line).

  >>> default_precision(convolves=False)
  'float32'
  """
  for name, value in (("convolves", convolves), ("wide_products", wide_products)):
    if not isinstance(value, (bool, np.bool_)):
      raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
  if convolves and _onednn.enabled(jnp.bfloat16):
    return "bfloat16"
  return "bfloat16" if wide_products and _cpu_computes_bfloat16() else "float32"


def get_policy(precision: Optional[Union[str, Policy]] = None, *, convolves: bool = False,
               wide_products: bool = False) -> Policy:
  """The :class:`Policy` named ``precision``: ``"float32"``, ``"bfloat16"``, or ``None``
  for :func:`default_precision` (``convolves``, ``wide_products``: of such a model).

  Raises:
    ValueError: any other name (one line).
    TypeError: ``convolves`` or ``wide_products`` not a bool (one line).

  >>> get_policy("bfloat16").name, get_policy(None).name
  ('bfloat16', 'float32')
  """
  if isinstance(precision, Policy):
    return precision
  if precision is None:
    precision = default_precision(convolves, wide_products)
  if not isinstance(precision, str) or precision not in PRECISIONS:
    raise ValueError(f"precision must be None or one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
  return _policy(precision)


@functools.lru_cache(maxsize=None)
def _policy(name: str) -> Policy:
  return Policy(name=name, param_dtype=jnp.dtype(jnp.float32), compute_dtype=jnp.dtype(name),
                output_dtype=jnp.dtype(jnp.float32))


def cast_floating(tree: Any, dtype: Any) -> Any:
  """``tree`` with every floating-point array leaf cast to ``dtype``; integer, boolean
  and PRNG-key leaves, and non-array leaves, unchanged. Shapes are kept.

  >>> t = cast_floating({"w": jax.numpy.ones(2), "n": jax.numpy.arange(2)}, "bfloat16")
  >>> t["w"].dtype, t["n"].dtype
  (dtype(bfloat16), dtype('int32'))
  """
  dtype = jnp.dtype(dtype)

  def cast(leaf):
    if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.dtype != dtype:
      return jnp.asarray(leaf).astype(dtype)
    return leaf

  return jax.tree_util.tree_map(cast, tree)


def apply_in_precision(apply_fn: Callable, precision: Optional[Union[str, Policy]]) -> Callable:
  """``apply_fn`` (a Flax ``model.apply``) with its products in ``precision``'s dtype.

  The returned function has ``apply_fn``'s signature ``(variables, x, *args,
  **kwargs)``. Every float32 matrix product and convolution of ``apply_fn`` takes its
  two operands in the compute dtype and returns float32 (the backward products
  likewise, the cotangent cast to the compute dtype); parameters, inputs, activations,
  the other collections (BatchNorm's ``batch_stats``) and the outputs stay float32, same
  shapes. On the CPU backend its 2-D convolutions (stride 1, no dilation, one group) and
  their input gradients run through oneDNN, in every precision (a private detail of the
  backend, equal to XLA's convolution to float32 rounding; ``JAXPHYS_ONEDNN=0`` turns it
  off). With a float32 policy and nothing to rewrite, ``apply_fn`` itself is returned.

  ``precision=None`` decides at each trace, from the traced model, by
  :func:`default_precision`; the returned function's ``precision`` attribute holds the
  name last chosen (``None`` before the first call where the choice depends on the
  model, ``"float32"`` where bfloat16 is never the default).

  >>> import jax, jaxphys as jp
  >>> m = jp.MLP((4, 2))
  >>> v = m.init(jax.random.key(0), jax.numpy.ones((1, 3)))
  >>> apply_in_precision(m.apply, "bfloat16")(v, jax.numpy.ones((5, 3))).dtype
  dtype('float32')
  >>> by_default = apply_in_precision(m.apply, None)
  >>> by_default(v, jax.numpy.ones((5, 3))).dtype, by_default.precision
  (dtype('float32'), 'float32')
  """
  if precision is None:
    return _by_default(apply_fn)
  policy = get_policy(precision)
  onednn = _onednn.enabled(policy.compute_dtype)
  if policy.is_identity and not onednn:
    return apply_fn
  mixed = _mixed_products.with_products(apply_fn, policy.compute_dtype, onednn=onednn)

  @functools.wraps(apply_fn)
  def apply(variables, x, *args, **kwargs):
    return policy.cast_to_output(mixed(variables, x, *args, **kwargs))

  return apply


def _by_default(apply_fn: Callable) -> Callable:
  """``apply_fn`` in :func:`default_precision` of the model traced at each call; where
  that cannot be bfloat16 (no CPU with AVX-512 BF16), float32's function itself (nothing
  traced twice). With ``JAXPHYS_ONEDNN=0`` wide products can still choose bfloat16.
  Whether oneDNN's convolutions work is checked (compiled) only once a model convolves."""
  if not _cpu_computes_bfloat16():
    as_float32 = apply_in_precision(apply_fn, "float32")

    @functools.wraps(apply_fn)
    def apply(*args, **kwargs):
      return as_float32(*args, **kwargs)

    apply.precision = "float32"
    return apply

  def choose(jaxpr):
    convolves = _mixed_products.onednn_convolves(jaxpr)
    policy = get_policy(None, convolves=convolves, wide_products=has_wide_products(jaxpr))
    apply.precision = policy.name
    return policy.compute_dtype, convolves and _onednn.enabled(policy.compute_dtype)

  mixed = _mixed_products.by_program(apply_fn, choose)

  @functools.wraps(apply_fn)
  def apply(variables, x, *args, **kwargs):
    return cast_floating(mixed(variables, x, *args, **kwargs), jnp.float32)

  apply.precision = None
  return apply
