"""Private: 2-D convolutions through oneDNN on the CPU backend.

jaxlib's CPU backend contains oneDNN, and its runtime executes a custom call named
``__onednn$convolution`` with oneDNN's direct convolution (float32, or bfloat16 operands
with a float32 or bfloat16 result, natively on AVX-512 BF16 hardware). XLA's own CPU
convolutions are slower on the course CNN's shapes, and compute bfloat16 operands in float32
(BENCHMARKS.md, "Convolutions through oneDNN"). XLA emits that custom call only from a rewrite
that this jaxlib does not run, so this module emits it itself:

* :data:`conv_p` is a primitive with ``lax.conv_general_dilated``'s meaning for stride 1,
  no dilation, one feature group and padding of at most the kernel size less one. On CPU
  it lowers to the custom call; on every other platform to ``lax.conv_general_dilated``.
  It is bilinear: forward mode and reverse mode of any order work. Under ``vmap`` a
  mapped input with one kernel is one larger call, a mapped kernel (K runs of a model)
  one call per run, up to :data:`_MAX_RUNS` runs (more take XLA's convolution).
* Its input gradient is ``conv_p`` again (the cotangent convolved with the flipped
  kernel). The runtime offers no backward-weights call; the kernel gradient is
  ``conv_p`` too for bfloat16 operands (:func:`kernel_gradient`: the input, its examples
  as features, convolved with the cotangent as the kernel), and JAX's own rule (XLA's
  convolution) in float32, where that is the faster of the two.
* :func:`enabled` says whether to use it, per operand dtype: the CPU backend of an x86-64
  machine, a jaxlib version whose custom call was checked here (its configuration format
  is private to XLA), ``JAXPHYS_ONEDNN`` not ``0``, for bfloat16 a CPU with AVX-512 BF16,
  and a small convolution whose value and gradients agree with XLA's on first use.

Only the trainer uses it (:mod:`jaxphys.mixed_precision` rewrites a model's convolutions
when :func:`enabled`); the numbers equal XLA's to float32 rounding (in bfloat16 the
rewrite rounds the forward result to bfloat16, :mod:`jaxphys._mixed_products`).
"""

from __future__ import annotations

import functools
import json
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax._src import dispatch as _dispatch
from jax._src.interpreters import mlir as _mlir
from jax._src.lax import convolution as _conv
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxphys import _switches

# The jaxlib versions whose custom call and configuration format were checked here. The
# format is XLA's private protocol buffer (read from JSON); a wrong one can abort the
# process inside oneDNN rather than raise, so other versions use XLA's convolutions until
# checked and added.
_CHECKED_JAXLIB = ("0.10.2",)

conv_p = Primitive("jaxphys_onednn_conv")
_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))  # operands and results


def supported(params: dict, lhs_shape, rhs_shape) -> bool:
  """Whether ``lax.conv_general_dilated`` with ``params`` (a jaxpr equation's) and these
  operand shapes is one that :data:`conv_p` computes: 2-D, stride 1, no dilation, one
  group, each padding between 0 and the kernel size less one."""
  dn = params["dimension_numbers"]
  if len(lhs_shape) != 4 or not isinstance(dn, lax.ConvDimensionNumbers):
    return False
  kernel = [rhs_shape[d] for d in dn.rhs_spec[2:]]
  plain = (all(s == 1 for s in params["window_strides"])
           and all(d == 1 for d in (*params["lhs_dilation"], *params["rhs_dilation"]))
           and params["feature_group_count"] == 1 and params["batch_group_count"] == 1)
  return plain and all(0 <= lo <= k - 1 and 0 <= hi <= k - 1
                       for (lo, hi), k in zip(params["padding"], kernel))


def conv(lhs, rhs, padding, dimension_numbers: lax.ConvDimensionNumbers, preferred_element_type=None):
  """``lax.conv_general_dilated(lhs, rhs, (1, 1), padding, dimension_numbers=...)`` for a
  :func:`supported` convolution; the result in ``preferred_element_type`` (default: the
  operands' dtype; ``rhs`` is cast to ``lhs``'s)."""
  out = jnp.dtype(preferred_element_type or lhs.dtype)
  params = {"window_strides": (1, 1), "padding": padding, "lhs_dilation": (1, 1),
            "rhs_dilation": (1, 1), "dimension_numbers": dimension_numbers,
            "feature_group_count": 1, "batch_group_count": 1}
  if (jnp.dtype(lhs.dtype) not in _DTYPES or out not in _DTYPES
      or not supported(params, lhs.shape, rhs.shape)):
    raise ValueError(f"oneDNN convolution: unsupported operands {lhs.dtype}{list(lhs.shape)} x "
                     f"{rhs.dtype}{list(rhs.shape)} -> {out}, padding {padding}")
  return conv_p.bind(lhs, rhs.astype(lhs.dtype), padding=tuple(map(tuple, padding)),
                     dimension_numbers=dimension_numbers, preferred_element_type=out)


def _abstract(lhs, rhs, *, padding, dimension_numbers, preferred_element_type):
  lhs_spec, rhs_spec, out_spec = dimension_numbers
  shape = [0] * len(out_spec)
  shape[out_spec[0]], shape[out_spec[1]] = lhs.shape[lhs_spec[0]], rhs.shape[rhs_spec[0]]
  for i, (lo, hi) in enumerate(padding):
    shape[out_spec[2 + i]] = lhs.shape[lhs_spec[2 + i]] + lo + hi - rhs.shape[rhs_spec[2 + i]] + 1
  return jax.core.ShapedArray(tuple(shape), preferred_element_type)


def _xla(lhs, rhs, *, padding, dimension_numbers, preferred_element_type):
  """The same convolution by XLA (other platforms, ``vmap`` of many runs)."""
  return lax.conv_general_dilated(lhs, rhs, (1,) * len(padding), padding,
                                  dimension_numbers=dimension_numbers,
                                  preferred_element_type=preferred_element_type)


def _config(padding, dimension_numbers) -> str:
  """The custom call's backend configuration: XLA's ``OneDnnConvolutionConfig`` as JSON
  (axis numbers zero-based; oneDNN's dilation is stored plus one)."""
  lhs, rhs, out = (list(map(int, spec)) for spec in dimension_numbers)
  data = lambda spec: {"dims": 4, "data": {"batch_dim": spec[0], "feature_dim": spec[1],
                                           "spatial_dims": spec[2:]}}
  return json.dumps({"onednn_conv_config": {
      "dims": 4, "feature_groups": 1, "input": data(lhs), "output": data(out),
      "kernel": {"dims": 4, "filter": {"output_feature_dim": rhs[0], "input_feature_dim": rhs[1],
                                       "spatial_dims": rhs[2:]}},
      "window": {"strides": [1, 1], "window_dilations": [1, 1],
                 "pad_left": [int(lo) for lo, _ in padding], "pad_right": [int(hi) for _, hi in padding]}}})


def _lower_cpu(ctx, lhs, rhs, *, padding, dimension_numbers, preferred_element_type):
  result = _mlir.aval_to_ir_type(ctx.module_context, ctx.avals_out[0])
  return _mlir.custom_call("__onednn$convolution", result_types=[result], operands=[lhs, rhs],
                           backend_config=_config(padding, dimension_numbers), api_version=1).results


def transpose_lhs(g, lhs, rhs, *, padding, dimension_numbers, **unused):
  """The input's cotangent (in ``lhs.aval``'s dtype): ``g``, cast to the kernel's dtype,
  convolved with the flipped kernel by :data:`conv_p`."""
  lhs_spec, rhs_spec, out_spec = dimension_numbers
  kernel = [rhs.shape[d] for d in rhs_spec[2:]]
  flipped = lax.rev(rhs, tuple(rhs_spec[2:]))
  swapped = lax.ConvDimensionNumbers(out_spec, (rhs_spec[1], rhs_spec[0], *rhs_spec[2:]), lhs_spec)
  pads = tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel, padding))
  # operands in the kernel's dtype into float32 (oneDNN has no float32 -> bfloat16 form)
  dx = conv(g.astype(rhs.dtype), flipped, pads, swapped, preferred_element_type=jnp.float32)
  return dx.astype(lhs.aval.dtype)


# The layout of :func:`kernel_gradient`'s convolution.
_NHWC = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def kernel_gradient(g, lhs, padding, dimension_numbers):
  """The kernel's cotangent for the input ``lhs`` and the output's cotangent ``g`` (same
  dtype), in float32 and the kernel's layout, as one :data:`conv_p`: the input with
  its channels as the batch and its examples as the features (NHWC), the cotangent as
  the kernel (HWIO). ``None`` where :data:`conv_p` cannot compute it (a cotangent
  smaller than the padding)."""
  lhs_spec, rhs_spec, out_spec = dimension_numbers
  x_axes, k_axes = (lhs_spec[1], *lhs_spec[2:], lhs_spec[0]), (*out_spec[2:], out_spec[0], out_spec[1])
  params = {"window_strides": (1, 1), "padding": padding, "lhs_dilation": (1, 1), "rhs_dilation": (1, 1),
            "dimension_numbers": _NHWC, "feature_group_count": 1, "batch_group_count": 1}
  if not supported(params, [lhs.shape[a] for a in x_axes], [g.shape[a] for a in k_axes]):
    return None
  dw = conv(jnp.transpose(lhs, x_axes), jnp.transpose(g, k_axes), padding, _NHWC,
            preferred_element_type=jnp.float32)  # (in, height, width, out)
  perm = [0] * 4
  for axis, source in zip(rhs_spec, (3, 0, 1, 2)):
    perm[axis] = source
  return jnp.transpose(dw, perm)


def transpose_rhs(g, lhs, rhs, *, padding, dimension_numbers, **unused):
  """The kernel's cotangent (in ``rhs.aval``'s dtype): :func:`kernel_gradient` for
  bfloat16 operands, else JAX's own rule (XLA's convolution); each is the faster one
  for its dtype on the course CNN (BENCHMARKS.md, "Memory reuse on CPU")."""
  g = g.astype(lhs.dtype)
  dw = kernel_gradient(g, lhs, padding, dimension_numbers) if jnp.dtype(lhs.dtype) == jnp.bfloat16 else None
  if dw is None:
    return _conv._conv_general_dilated_transpose_rhs(
        g, lhs, rhs, window_strides=(1, 1), padding=padding, lhs_dilation=(1, 1),
        rhs_dilation=(1, 1), dimension_numbers=dimension_numbers, feature_group_count=1,
        batch_group_count=1, precision=None, preferred_element_type=rhs.aval.dtype, out_sharding=None)
  return dw.astype(rhs.aval.dtype)


# vmapped convolutions with a mapped kernel (K runs of one model) are this many
# oneDNN calls at most, one per run; more runs take XLA's batched convolution.
_MAX_RUNS = 32


def _batch(args, dims, **params):
  """``vmap`` of :data:`conv_p`: with one kernel, the mapped axis joins the examples
  (one call); with a mapped kernel, one call per index up to :data:`_MAX_RUNS`."""
  (lhs, rhs), (ld, rd) = args, dims
  lhs_spec, _, out_spec = params["dimension_numbers"]
  if rd is None:  # one kernel: the mapped axis joins the examples
    lhs = jnp.moveaxis(lhs, ld, lhs_spec[0])  # (..., K, N, ...): K * N examples
    shape = list(lhs.shape)
    k = shape.pop(lhs_spec[0])
    shape[lhs_spec[0]] *= k
    out = conv_p.bind(lhs.reshape(shape), rhs, **params)
    split = list(out.shape)
    split[out_spec[0]:out_spec[0] + 1] = [k, split[out_spec[0]] // k]
    return out.reshape(split), out_spec[0]
  k = rhs.shape[rd]
  if k > _MAX_RUNS:
    return jax.vmap(functools.partial(_xla, **params), in_axes=dims)(*args), 0
  take = lambda a, d, i: a if d is None else lax.index_in_dim(a, i, d, keepdims=False)
  return jnp.stack([conv_p.bind(take(lhs, ld, i), take(rhs, rd, i), **params) for i in range(k)]), 0


conv_p.def_abstract_eval(_abstract)
conv_p.def_impl(functools.partial(_dispatch.apply_primitive, conv_p))
mlir.register_lowering(conv_p, mlir.lower_fun(_xla, multiple_results=False))
mlir.register_lowering(conv_p, _lower_cpu, platform="cpu")
ad.defbilinear(conv_p, transpose_lhs, transpose_rhs)
batching.primitive_batchers[conv_p] = _batch


_CHECKED: dict = {}  # dtype name -> whether the first-use check passed


def _check(dtype) -> bool:
  """Whether this process's CPU backend computes a small convolution with ``dtype``
  operands (value, in float32 and for bfloat16 also rounded to bfloat16, and both
  gradients) through oneDNN as XLA does."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 6, 5, 3)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 2, 3, 4)), jnp.float32)
  dn = lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
  pads = ((1, 2), (0, 1))

  def close(a, b, rtol=1e-4):  # relative to the norm
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) <= rtol * np.linalg.norm(b)

  xs, ws = x.astype(dtype), w.astype(dtype)
  ours = lambda a, b: conv(a, b, pads, dn, jnp.float32)
  theirs = lambda a, b: lax.conv_general_dilated(a, b, (1, 1), pads, dimension_numbers=dn,
                                                 preferred_element_type=jnp.float32, precision="highest")
  if not close(jax.jit(ours)(xs, ws), theirs(xs, ws)):
    return False
  if dtype == jnp.bfloat16:  # the form whose result is rounded to bfloat16 too
    rounded = jax.jit(lambda a, b: conv(a, b, pads, dn, jnp.bfloat16))(xs, ws)
    if not close(rounded, theirs(xs, ws), 2 ** -8):
      return False
  loss = lambda c: lambda a, b: jnp.sum(jnp.sin(c(a.astype(dtype), b.astype(dtype))))
  ours, theirs = jax.jit(jax.grad(loss(ours), (0, 1)))(x, w), jax.grad(loss(theirs), (0, 1))(x, w)
  # bfloat16: XLA's rule keeps the cotangent in float32, this one rounds it as the operands
  return all(close(a, b, 1e-4 if dtype == jnp.float32 else 2e-2) for a, b in zip(ours, theirs))


def _cpu_has_bfloat16() -> bool:
  """Whether the CPU computes bfloat16 products natively (AVX-512 BF16; oneDNN aborts the
  process on a bfloat16 convolution it cannot build), with oneDNN's ISA not capped."""
  return _cpu_lists_bfloat16() and "ONEDNN_MAX_CPU_ISA" not in os.environ


@functools.cache
def _cpu_lists_bfloat16() -> bool:
  """Whether ``/proc/cpuinfo`` lists AVX-512 BF16 (read once per process)."""
  try:
    with open("/proc/cpuinfo") as f:
      return " avx512_bf16" in f.read()
  except OSError:
    return False


def _works(dtype) -> bool:
  """:func:`_check` once per process and dtype (asked by :func:`enabled` only where
  :func:`available`: bfloat16 only where the CPU has it)."""
  name = jnp.dtype(dtype).name
  if name not in _CHECKED:
    try:
      with jax.ensure_compile_time_eval():  # also when first asked inside a jit trace
        _CHECKED[name] = bool(_check(jnp.dtype(dtype)))
    except Exception:  # noqa: BLE001 (any failure of the private protocol means: do not use it)
      return False  # not remembered: it may have been the caller's context
  return _CHECKED[name]


def _jaxlib_checked() -> bool:
  import jaxlib
  return jaxlib.__version__ in _CHECKED_JAXLIB


def available(dtype=jnp.float32) -> bool:
  """Whether :func:`enabled` can be true for ``dtype`` here, judged without compiling
  anything: all its conditions but the first-use check.

  Raises:
    ValueError: ``JAXPHYS_ONEDNN`` set to anything but ``0`` or ``1`` (one line).
  """
  dtype = jnp.dtype(dtype)
  return (_switches.on("JAXPHYS_ONEDNN") and jax.default_backend() == "cpu"
          and platform.machine().lower() in ("x86_64", "amd64") and _jaxlib_checked()
          and dtype in _DTYPES and (dtype != jnp.bfloat16 or _cpu_has_bfloat16()))


def enabled(dtype=jnp.float32) -> bool:
  """Whether the trainer computes supported convolutions with ``dtype`` operands (float32
  or bfloat16) by :data:`conv_p` here.

  Raises:
    ValueError: ``JAXPHYS_ONEDNN`` set to anything but ``0`` or ``1`` (one line).
  """
  return available(dtype) and _works(dtype)
