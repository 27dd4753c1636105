"""Private: a function's matrix products and convolutions rewritten, forward and backward
(used by :mod:`jaxphys.mixed_precision`), for two reasons that may come together:

* low precision: each float32 ``dot_general`` and ``conv_general_dilated`` becomes the
  same product of operands cast to the compute dtype with a float32 result
  (``preferred_element_type``); a convolution through oneDNN rounds its float32 sums
  to the compute dtype first (:func:`_onednn_rounded`). Their VJPs compute the two
  backward products the same way, the cotangent cast to the compute dtype. Everything
  else (elementwise operations, reductions, BatchNorm) stays float32;
* oneDNN: on the CPU backend, each supported 2-D convolution and its input gradient run
  through :mod:`jaxphys._onednn` instead of XLA's convolution.

:func:`with_products` traces a function to a jaxpr and evaluates it again with those
replacements (:func:`by_program`: replacements chosen per traced jaxpr). Products
inside nested calls (``jit``) are rewritten too; those inside other higher-order
primitives (``custom_jvp``, ``scan``, ``remat``, ...) run as traced. The low-precision
products are ``custom_vjp`` functions: reverse-mode derivatives of any order work,
forward mode (``jax.jvp``, ``jax.jacfwd``) does not. The float32 oneDNN
convolution is an ordinary bilinear primitive: both modes work.

The backward products call JAX's own transpose rules (private to JAX, pinned by
``tests/test_precision.py``), asking for a float32 result from low-precision operands;
on the CPU backend a large dense layer's kernel gradient is written so that its
operands stay in low precision (:func:`_kernel_gradient`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.lax import convolution as _conv
from jax._src.lax import lax as _lax
from jax.extend import core as _core
from jax.extend.core import primitives as _prims

from jaxphys import _onednn

F32 = jnp.dtype(jnp.float32)


class _Float32Operand:
  """What JAX's transpose rules read of the operand whose cotangent they compute."""

  def __init__(self, like: jax.Array):
    self.aval = jax.core.ShapedArray(like.shape, F32)
    self.shape, self.ndim = like.shape, like.ndim


def _product(transpose_lhs, transpose_rhs, forward):
  """A custom-VJP product ``(x, y, params) -> float32`` with low-precision operands."""

  @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
  def product(x, y, dtype, params):
    return forward(x.astype(dtype), y.astype(dtype), **dict(params), preferred_element_type=F32)

  def fwd(x, y, dtype, params):
    x, y = x.astype(dtype), y.astype(dtype)
    return forward(x, y, **dict(params), preferred_element_type=F32), (x, y)

  def bwd(dtype, params, res, g):
    x, y = res
    kw = dict(params, precision=None, preferred_element_type=F32, out_sharding=None)
    g = g.astype(dtype)
    return (transpose_lhs(g, _Float32Operand(x), y, **kw),
            transpose_rhs(g, x, _Float32Operand(y), **kw))

  product.defvjp(fwd, bwd)
  return product


def _onednn_forward(lhs, rhs, *, padding, dimension_numbers, preferred_element_type=None, **unused):
  return _onednn.conv(lhs, rhs, padding, dimension_numbers, preferred_element_type)


def _onednn_rounded(lhs, rhs, *, padding, dimension_numbers, preferred_element_type=None, **unused):
  """oneDNN's convolution of low-precision operands, its float32 sums rounded to the
  operands' dtype (as Keras's ``mixed_bfloat16`` and PyTorch's autocast keep them), in
  ``preferred_element_type``: what reads it (bias, activation, pooling and their
  gradients) moves half the bytes."""
  out = _onednn.conv(lhs, rhs, padding, dimension_numbers, lhs.dtype)
  return out.astype(preferred_element_type or lhs.dtype)


def _kernel_gradient(g, x, y, *, dimension_numbers, **kw):
  """The rhs cotangent of ``dot_general(x, y)``: JAX's rule, except for a dense layer's
  kernel (``y`` of shape ``(inputs, outputs)`` contracted with the last axis of ``x``
  ``(..., inputs)``, no batch axes; ``g`` ``(..., outputs)``). That gradient, float32
  ``(inputs, outputs)``, is ``x.T @ g`` over all rows of ``x``, with ``x.T`` laid out row
  by row (:func:`_rows_of_transpose`): YNNPACK computes that product from bfloat16
  operands, where XLA converts the operands of JAX's form (contracted over the first
  axes of both) to float32 first."""
  (lc, rc), (lb, rb) = dimension_numbers
  if lb or rb or tuple(lc) != (x.ndim - 1,) or tuple(rc) != (0,) or y.ndim != 2:
    return _lax._dot_general_transpose_rhs(g, x, y, dimension_numbers=dimension_numbers, **kw)
  rows = x.reshape(-1, x.shape[-1])
  return jax.lax.dot_general(_rows_of_transpose(rows), g.reshape(-1, g.shape[-1]),
                             (((1,), (0,)), ((), ())), preferred_element_type=F32)


def _rows_of_transpose(a: jax.Array) -> jax.Array:
  """``a.T`` (2-D) joined from two halves, so that XLA materialises it in row-major
  order (it folds a bare transpose into the product that reads it)."""
  t = a.T
  half = t.shape[0] // 2
  return jnp.concatenate([t[:half], t[half:]]) if half else t


# Matrix products: JAX's rules both ways, and the dense kernel gradient above for each
# product of at least _LARGE_DOT_FLOPS (forward, one run of a vmapped sweep) on the CPU
# backend. Such a product and its kernel gradient alone reach the trainer's
# _backend._SMALL_DOT_FLOPS (1e8) per step, so its program's dots run on YNNPACK; XLA's
# own dot code (small programs) computes bfloat16 operands in float32 either way, and
# the row-major copy would only cost there. A program of many smaller products keeps
# JAX's form, on YNNPACK or not.
_LARGE_DOT_FLOPS = 5e7
_dot = _product(_lax._dot_general_transpose_lhs, _lax._dot_general_transpose_rhs,
                jax.lax.dot_general)
_large_dot = _product(_lax._dot_general_transpose_lhs, _kernel_gradient, jax.lax.dot_general)
_conv_product = _product(_conv._conv_general_dilated_transpose_lhs,
                         _conv._conv_general_dilated_transpose_rhs, jax.lax.conv_general_dilated)
_onednn_conv_product = _product(_onednn.transpose_lhs, _onednn.transpose_rhs, _onednn_rounded)

# The parameters each product keeps (the others are set by the rewrite).
_KEPT = {
    _prims.dot_general_p: ("dimension_numbers",),
    _prims.conv_general_dilated_p: ("window_strides", "padding", "lhs_dilation", "rhs_dilation",
                                    "dimension_numbers", "feature_group_count", "batch_group_count"),
}


def with_products(fn: Callable, dtype: Any, onednn: bool = False) -> Callable:
  """``fn`` with its float32 products computed from ``dtype`` operands into float32,
  and (``onednn``) its supported convolutions through oneDNN.

  Same signature, outputs and shapes as ``fn``. The array leaves of the positional
  arguments are traced; their other leaves (``train=True``) and the keyword arguments
  reach ``fn`` as they are.
  """
  dtype = jnp.dtype(dtype)
  return by_program(fn, lambda jaxpr: (dtype, onednn))


def by_program(fn: Callable, choose: Callable) -> Callable:
  """``fn`` rewritten as :func:`with_products` does, with the ``(dtype, onednn)`` that
  ``choose(jaxpr)`` returns for the jaxpr of each call (each trace)."""

  @functools.wraps(fn)
  def rewritten(*args, **kwargs):
    leaves, tree = jax.tree_util.tree_flatten(args)
    traced = [i for i, leaf in enumerate(leaves) if isinstance(leaf, (jax.Array, np.ndarray))]

    def on_arrays(*arrays):  # other leaves (train=True, names) stay Python values
      full = list(leaves)
      for i, a in zip(traced, arrays):
        full[i] = a
      return fn(*jax.tree_util.tree_unflatten(tree, full), **kwargs)

    arrays = [leaves[i] for i in traced]
    closed, shapes = jax.make_jaxpr(on_arrays, return_shape=True)(*arrays)
    dtype, onednn = choose(closed.jaxpr)
    replace = functools.partial(_replacement, dtype=jnp.dtype(dtype), onednn=onednn)
    out = _evaluate(closed.jaxpr, closed.consts, jax.tree_util.tree_leaves(arrays), replace)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(shapes), out)

  return rewritten


def onednn_convolves(jaxpr) -> bool:
  """Whether ``jaxpr`` holds a convolution that the rewrite hands to oneDNN
  (:func:`_to_onednn`), at its top level or in nested ``jit`` calls."""
  return any(_to_onednn(eqn, [v.aval for v in eqn.invars]) for eqn in _rewritten_eqns(jaxpr))


def _rewritten_eqns(jaxpr):
  """The equations the rewrite visits: those of ``jaxpr`` and of its nested ``jit`` calls."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ("jit", "pjit"):
      yield from _rewritten_eqns(eqn.params["jaxpr"].jaxpr)
    else:
      yield eqn


def product_shapes(jaxpr) -> list:
  """``(kind, batch, rows, inner, columns)`` of each product the rewrite replaces in
  ``jaxpr`` (nested ``jit`` calls included): ``kind`` ``"dot"`` or ``"conv"``; for a
  ``dot_general``, the sizes of its batch, free left-hand (rows), contracted (inner) and
  free right-hand (columns) dimensions, so that it costs ``2 * batch * rows * inner *
  columns`` FLOPs; for a convolution, ``(1, output elements / output features, input
  features * window / groups, output features)``: the same count."""
  return [_shape(eqn) for eqn in _rewritten_eqns(jaxpr)
          if _rewritable(eqn, [v.aval for v in eqn.invars])]


def _shape(eqn) -> tuple:
  """``(kind, batch, rows, inner, columns)`` of the product ``eqn`` (:func:`product_shapes`)."""
  lhs, rhs = (v.aval.shape for v in eqn.invars)
  if eqn.primitive is _prims.dot_general_p:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    return ("dot", _size(lhs, lb), _size(lhs, (*lc, *lb), free=True), _size(lhs, lc),
            _size(rhs, (*rc, *rb), free=True))
  dn = eqn.params["dimension_numbers"]
  out = eqn.outvars[0].aval.shape
  columns = out[dn.out_spec[1]]
  return ("conv", 1, int(np.prod(out)) // columns, int(np.prod(rhs)) // columns, columns)


def _size(shape: tuple, dims: tuple, free: bool = False) -> int:
  """How many elements ``shape`` holds along ``dims`` (``free``: along the other dimensions)."""
  return int(np.prod([n for d, n in enumerate(shape) if (d in dims) != free]))


def _rewritable(eqn, inputs) -> bool:
  """Whether ``eqn`` is a product the rewrite replaces: float32 operands and result."""
  return (eqn.primitive in _KEPT and all(jnp.dtype(x.dtype) == F32 for x in inputs)
          and eqn.params.get("preferred_element_type") in (None, F32))


def _to_onednn(eqn, inputs) -> bool:
  """Whether the rewrite computes ``eqn`` (with operands like ``inputs``) by oneDNN:
  a rewritable 2-D convolution that :func:`_onednn.supported` accepts."""
  return (eqn.primitive is _prims.conv_general_dilated_p and _rewritable(eqn, inputs)
          and _onednn.supported(eqn.params, inputs[0].shape, inputs[1].shape))


def _replacement(eqn, inputs, dtype, onednn) -> Optional[Callable]:
  """What computes ``eqn`` instead (a function of ``inputs``), or ``None`` to keep it."""
  if not _rewritable(eqn, inputs):
    return None
  params = tuple((k, eqn.params[k]) for k in _KEPT[eqn.primitive])
  is_conv = eqn.primitive is _prims.conv_general_dilated_p
  fast = onednn and _to_onednn(eqn, inputs)
  if dtype == F32:
    return (lambda x, y: _onednn_forward(x, y, **dict(params))) if fast else None
  product = (_onednn_conv_product if fast else _conv_product if is_conv
             else _large_dot if _large_on_cpu(eqn) else _dot)
  return lambda x, y: product(x, y, dtype, params)


def _large_on_cpu(eqn) -> bool:
  """Whether the product ``eqn`` takes :data:`_LARGE_DOT_FLOPS` or more, on the CPU backend."""
  return jax.default_backend() == "cpu" and flops(eqn) >= _LARGE_DOT_FLOPS


def flops(eqn) -> int:
  """FLOPs (2 per multiply-add) of the product ``eqn`` (a ``dot_general`` or a convolution)."""
  _, batch, rows, inner, columns = _shape(eqn)
  return 2 * batch * rows * inner * columns


def _evaluate(jaxpr, consts, args, replace) -> list:
  """Evaluates ``jaxpr`` (as ``jax.core.eval_jaxpr`` does), each equation for which
  ``replace(eqn, inputs)`` gives a function computed by that function."""
  env = {}
  read = lambda v: v.val if isinstance(v, _core.Literal) else env[v]
  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    inputs = [read(v) for v in eqn.invars]
    instead = replace(eqn, inputs)
    if instead is not None:
      outputs = [instead(*inputs)]
    elif eqn.primitive.name in ("jit", "pjit"):
      inner = eqn.params["jaxpr"]
      outputs = _evaluate(inner.jaxpr, inner.consts, inputs, replace)
    else:
      with eqn.ctx.manager:
        outputs = eqn.primitive.bind(*inputs, **eqn.primitive.get_bind_params(eqn.params))
      outputs = outputs if eqn.primitive.multiple_results else [outputs]
    env.update(zip(eqn.outvars, outputs))
  return [read(v) for v in jaxpr.outvars]
