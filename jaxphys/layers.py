"""Layers whose compiled form is tuned per backend (measured on a 2-core CPU, batch 128,
the course CNN: see BENCHMARKS.md).

:func:`conv2d` is a stride-1 2-D convolution. On CPU, in a training step, its forward
pass runs as a SAME convolution cropped to VALID for 16 or more input channels (faster
there on XLA's CPU backend; plain VALID when not differentiated), its input gradient is
XLA's, and its kernel gradient is one matrix product per kernel offset (XLA's own runs
as a large-kernel convolution at 8 GFLOP/s). :func:`pool2d` is non-overlapping pooling
as a reshape and a reduction, whose gradient is elementwise instead of XLA's
select-and-scatter (10x slower on CPU). Other backends keep XLA's (cuDNN's) forms.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["conv2d", "Conv", "pool2d"]

_DIMS = ("NHWC", "HWIO", "NHWC")


def _pad_same(x: jax.Array, kh: int, kw: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))


def _conv_valid(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=_DIMS)


def _conv_valid_forward_cpu(x, kernel):
  """The VALID convolution for a training step: with 16 or more input channels as a SAME
  one cropped. In a training step of the course CNN the padded form is faster (step 190
  against 243 ms); alone, XLA's CPU backend runs it 1.5 to 4x faster at 16 to 32 input
  channels and slower at 1 (2.1 against 1.2 ms). In a forward-only program the VALID form
  is faster (the whole CNN: 24 against 79 ms), so the primal keeps it."""
  kh, kw, cin, _ = kernel.shape
  if cin < 16:
    return _conv_valid(x, kernel)
  out = lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMS)
  top, left = (kh - 1) // 2, (kw - 1) // 2
  return out[:, top:top + x.shape[1] - kh + 1, left:left + x.shape[2] - kw + 1, :]


@jax.custom_vjp
def _conv_valid_cpu(x, kernel):
  return _conv_valid(x, kernel)  # not differentiated: evaluation and prediction


def _conv_fwd(x, kernel):
  return _conv_valid_forward_cpu(x, kernel), (x, kernel)


def _conv_bwd(res, g):
  x, kernel = res
  kh, kw, cin, cout = kernel.shape
  _, pull = jax.vjp(lambda x: _conv_valid(x, kernel), x)
  (dx,) = pull(g)
  h, w = g.shape[1], g.shape[2]
  g2 = g.reshape(-1, cout)
  # dK[i, j] = sum over batch and output pixels of x shifted by (i, j) times g.
  dk = jnp.stack([x[:, i:i + h, j:j + w, :].reshape(-1, cin).T @ g2
                  for i in range(kh) for j in range(kw)])
  return dx, dk.reshape(kh, kw, cin, cout).astype(kernel.dtype)


_conv_valid_cpu.defvjp(_conv_fwd, _conv_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, padding: str = "VALID") -> jax.Array:
  """Stride-1 2-D convolution (cross-correlation, as in every deep-learning library).

  Args:
    x: ``(batch, height, width, in_channels)``.
    kernel: ``(kh, kw, in_channels, out_channels)``.
    padding: ``"VALID"`` (output ``height - kh + 1``) or ``"SAME"`` (output ``height``).

  Returns:
    ``(batch, height', width', out_channels)``.
  """
  if padding not in ("VALID", "SAME"):
    raise ValueError(f"conv2d padding must be 'VALID' or 'SAME', got {padding!r}")
  if padding == "SAME":
    x = _pad_same(x, kernel.shape[0], kernel.shape[1])
  if jax.default_backend() == "cpu":
    return _conv_valid_cpu(x, kernel)
  return _conv_valid(x, kernel)


class Conv(nn.Module):
  """Drop-in for ``flax.linen.Conv`` (stride 1, square kernel) built on :func:`conv2d`.

  Same parameters (``kernel`` ``(k, k, in, features)``, LeCun-normal; ``bias``
  ``(features,)``, zeros), so checkpoints are interchangeable.
  """

  features: int
  kernel_size: int = 3
  padding: str = "VALID"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return conv2d(x, kernel.astype(x.dtype), self.padding) + bias


def pool2d(x: jax.Array, size: int, kind: str = "max") -> jax.Array:
  """Non-overlapping ``size`` x ``size`` pooling (stride ``size``, VALID padding).

  ``(batch, height, width, channels) -> (batch, height // size, width // size,
  channels)``; rows and columns that do not fill a window are dropped. Equal, value and
  gradient, to ``flax.linen.max_pool`` / ``avg_pool`` with ``strides=(size, size)``
  (for tied maxima the gradient goes to the first in row-major order, as XLA's
  select-and-scatter does), as a reshape and a reduction whose gradient is elementwise:
  XLA's select-and-scatter is 10x slower on CPU (course CNN, batch 128: 112 against
  12 ms).
  """
  if kind not in ("max", "avg"):
    raise ValueError(f"pool2d kind must be 'max' or 'avg', got {kind!r}")
  n, h, w, c = x.shape
  hs, ws = h // size, w // size
  x = x[:, :hs * size, :ws * size].reshape(n, hs, size, ws, size, c)
  if kind == "avg":
    return jnp.mean(x, axis=(2, 4))
  return _max_windows(x)


@jax.custom_vjp
def _max_windows(x):
  """``(n, hs, s, ws, s, c) -> (n, hs, ws, c)``: the maximum of each window."""
  return jnp.max(x, axis=(2, 4))


def _max_windows_fwd(x):
  m = _max_windows(x)
  return m, (x, m)


def _max_windows_bwd(res, g):
  x, m = res
  s = x.shape[2]
  taken = jnp.zeros(m.shape, bool)
  grads = {}
  for i in range(s):  # row-major: the first maximum of each window takes the gradient
    for j in range(s):
      pick = (x[:, :, i, :, j] == m) & ~taken
      taken = taken | pick
      grads[i, j] = jnp.where(pick, g, jnp.zeros_like(g))
  rows = [jnp.stack([grads[i, j] for j in range(s)], 3) for i in range(s)]  # (n, hs, ws, s, c)
  return (jnp.stack(rows, 2),)  # (n, hs, s, ws, s, c)


_max_windows.defvjp(_max_windows_fwd, _max_windows_bwd)

