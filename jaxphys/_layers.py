"""Private layer implementations used by :mod:`jaxphys.models` (not public API).

:func:`pool2d` is non-overlapping pooling as a reshape and a reduction, whose gradient is
elementwise instead of XLA's select-and-scatter, which is slow on CPU
(``benchmarks/layers.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

def pool2d(x: jax.Array, size: int, kind: str = "max") -> jax.Array:
  """Non-overlapping ``size`` x ``size`` pooling (stride ``size``, VALID padding).

  ``(batch, height, width, channels) -> (batch, height // size, width // size,
  channels)``; rows and columns that do not fill a window are dropped. Equal, value and
  gradient, to ``flax.linen.max_pool`` / ``avg_pool`` with ``strides=(size, size)``
  (for tied maxima the gradient goes to the first in row-major order, as XLA's
  select-and-scatter does), as a reshape and a reduction whose gradient is elementwise.
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
