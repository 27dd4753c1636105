"""Private layer implementations used by :mod:`jaxphys.models` (not public API).

:func:`pool2d` is non-overlapping pooling as a reshape and a reduction, whose gradient is
elementwise instead of XLA's select-and-scatter, which is slow on CPU
(``benchmarks/layers.py``, BENCHMARKS.md).

:class:`Dropout` is ``flax.linen.Dropout`` whose mask, for rates that are multiples of
1/256, takes 1-8 random bits per element instead of a 32-bit word (:func:`keep_mask`):
the random bits are most of dropout's cost on CPU, and the course CNN's epoch is faster
with it (``benchmarks/layers.py``, BENCHMARKS.md). Other rates draw exactly as Flax does.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["pool2d", "Dropout", "keep_mask"]


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


def keep_mask(key, shape: Sequence[int], rate: float) -> jax.Array:
  """Boolean ``shape`` mask, each element independently True with probability
  ``1 - rate``.

  If ``rate * 2**b`` is an integer for ``b`` in 1, 2, 4, 8 (rates 1/2, 1/4, 3/8, ...),
  the smallest such ``b`` bits decide each element: ``jax.random.bits(key, (W,))``
  with ``W = ceil(n / (32 // b))`` words, element ``i`` of the flattened mask is field
  ``i // W`` (bits ``b * (i // W)`` and up) of word ``i % W``, kept if the field is at
  least ``rate * 2**b``. So each probability is exact and an element's bits are shared
  with no other. The field index is the slowest-varying one: XLA fuses the unpacking
  into the mask's consumers, and there it must stay a shift by the same amount across
  neighbouring elements (with the field index fastest, the course CNN's step was slower,
  not faster: BENCHMARKS.md). Other rates: ``jax.random.bernoulli(key, 1 - rate,
  shape)``, as ``flax.linen.Dropout`` draws.
  """
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"keep_mask: rate must be in [0, 1], got {rate!r}")
  n = math.prod(shape)
  for bits in (1, 2, 4, 8):
    threshold = rate * (1 << bits)
    if threshold == int(threshold):
      break
  else:
    return jax.random.bernoulli(key, 1.0 - rate, shape)
  per_word = 32 // bits
  words = jax.random.bits(key, (-(-n // per_word),), jnp.uint32)
  shifts = jnp.arange(per_word, dtype=jnp.uint32)[:, None] * bits
  fields = (words[None, :] >> shifts) & jnp.uint32((1 << bits) - 1)  # (per_word, W)
  keep = fields >= jnp.uint32(int(threshold))
  return keep.reshape(shape) if keep.size == n else keep.reshape(-1)[:n].reshape(shape)


class Dropout(nn.Module):
  """Inverted dropout, a drop-in for ``flax.linen.Dropout`` (same attributes and call).

  In training (``deterministic=False``) each element is zeroed with probability ``rate``
  and the others are scaled by ``1 / (1 - rate)``; the mask comes from
  :func:`keep_mask` with the ``rng_collection`` stream (``"dropout"``). Shape-preserving.
  """

  rate: float
  broadcast_dims: Sequence[int] = ()
  deterministic: Optional[bool] = None
  rng_collection: str = "dropout"

  @nn.compact
  def __call__(self, inputs: jax.Array, deterministic: Optional[bool] = None,
               rng: Optional[jax.Array] = None) -> jax.Array:
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    if not 0.0 <= self.rate <= 1.0:
      raise ValueError(f"Dropout rate must be in [0, 1], got {self.rate!r}")
    if self.rate == 0.0 or deterministic:
      return inputs
    if self.rate == 1.0:  # no 0/0 in the gradient
      return jnp.zeros_like(inputs)
    if rng is None:
      rng = self.make_rng(self.rng_collection)
    shared = {d % inputs.ndim for d in self.broadcast_dims}  # dimensions sharing one mask
    shape = [1 if d in shared else s for d, s in enumerate(inputs.shape)]
    keep = jnp.broadcast_to(keep_mask(rng, shape, self.rate), inputs.shape)
    return jnp.where(keep, inputs / (1.0 - self.rate), jnp.zeros_like(inputs))
