"""``jax.random.permutation`` bit for bit, computed on the host beside a running program.

XLA's CPU client runs one program at a time, so a shuffle drawn with ``jax.random``
while an epoch runs waits for that epoch to end. :func:`start` does the device's part
(a few key splits, microseconds) at once and returns a function that does the rest on
the host, off the device's queue: threefry-2x32 bits (as ``jax.random.bits`` draws them
with partitionable threefry, JAX's default) and stable sorts by those bits (an LSD
radix sort), in Numba, the runs of a batch of keys on parallel host threads. Keys of
another implementation, or ``jax_threefry_partitionable=False``, draw their bits with
``jax.random`` in the device part instead. On a 2-core CPU, for 100,000 examples: one
key's shuffle 4.4 ms against 11-15 ms drawn on the device, a logistic regression's epoch
11-13 ms against 18-19 ms (``benchmarks/shuffle.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numba  # only this benchmark needs it
import numpy as np

_U = numba.uint64
_MASK = np.uint64(0xFFFFFFFF)


def num_rounds(n: int) -> int:
  """Sort rounds ``jax.random.permutation`` uses for ``n`` elements."""
  return int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))


def start(key, n: int) -> Callable[[], np.ndarray]:
  """Begins ``jax.random.permutation(jax.random.split(k)[0], n)`` for every key ``k``.

  Args:
    key: one PRNG key, or a ``(K,)`` batch of keys.
    n: the number of elements to permute.

  Returns:
    A function of no arguments, to call when the device may be busy, returning the
    permutations as int32 ``(n,)`` (one key) or ``(K, n)`` NumPy arrays.
  """
  typed = jax.dtypes.issubdtype(jnp.result_type(key), jax.dtypes.prng_key)
  keys = key if typed else jax.random.wrap_key_data(key)
  batch = keys.ndim == 1
  keys = keys if batch else keys[None]
  rounds = num_rounds(n)
  if rounds == 0:  # n == 1
    return lambda: np.zeros((len(keys), n) if batch else (n,), np.int32)
  if str(jax.random.key_impl(keys)) == "threefry2x32" and jax.config.jax_threefry_partitionable:
    round_keys = np.asarray(jax.random.key_data(_round_keys(keys, rounds)))  # (K, R, 2)
    one = lambda r: _permutation(round_keys[r], n)
  else:
    words = [np.asarray(_round_words(k, rounds, n)) for k in keys]  # K x (R, n)
    one = lambda r: _permutation_by(words[r])

  def finish() -> np.ndarray:
    if not batch:
      return one(0)
    return np.stack(list(_host_pool().map(one, range(len(keys)))))

  return finish


def permutations(key, n: int) -> np.ndarray:
  """:func:`start` and its host part at once."""
  return start(key, n)()


def _split_rounds(key, rounds: int):
  """``(rounds,)`` keys of the sort rounds: ``permutation``'s splits of ``split(key)[0]``."""
  key, subs = jax.random.split(key)[0], []
  for _ in range(rounds):
    key, sub = jax.random.split(key)
    subs.append(sub)
  return jnp.stack(subs)


_round_keys = jax.jit(jax.vmap(_split_rounds, in_axes=(0, None)), static_argnums=1)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _round_words(key, rounds: int, n: int):
  """``(rounds, n)`` uint32 sort words for one key, drawn by ``jax.random`` (any key
  type; not vmapped, since some implementations draw differently under ``vmap``)."""
  return jnp.stack([jax.random.bits(k, (n,), jnp.uint32) for k in _split_rounds(key, rounds)])


@functools.lru_cache(maxsize=1)
def _host_pool():
  return concurrent.futures.ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))


# ------------------------------------------------------------------- Numba kernels


@numba.njit(nogil=True, cache=True, inline="always")
def _rotl(x, r):
  return ((x << r) | (x >> (_U(32) - r))) & _MASK


@numba.njit(nogil=True, cache=True, inline="always")
def _rounds4(x0, x1, r0, r1, r2, r3):
  x0 = (x0 + x1) & _MASK
  x1 = _rotl(x1, _U(r0)) ^ x0
  x0 = (x0 + x1) & _MASK
  x1 = _rotl(x1, _U(r1)) ^ x0
  x0 = (x0 + x1) & _MASK
  x1 = _rotl(x1, _U(r2)) ^ x0
  x0 = (x0 + x1) & _MASK
  x1 = _rotl(x1, _U(r3)) ^ x0
  return x0, x1


@numba.njit(nogil=True, cache=True)
def _threefry_bits(k0, k1, out):
  """``jax.random.bits(key, out.shape, uint32)``: ``out[i]`` = the xor of the two
  words of threefry-2x32 of the counter ``(0, i)`` under key ``(k0, k1)``."""
  a, b = _U(k0), _U(k1)
  c = a ^ b ^ _U(0x1BD11BDA)
  for i in range(out.shape[0]):
    x0, x1 = a, (_U(i) + b) & _MASK
    x0, x1 = _rounds4(x0, x1, 13, 15, 26, 6)
    x0, x1 = (x0 + b) & _MASK, (x1 + c + _U(1)) & _MASK
    x0, x1 = _rounds4(x0, x1, 17, 29, 16, 24)
    x0, x1 = (x0 + c) & _MASK, (x1 + a + _U(2)) & _MASK
    x0, x1 = _rounds4(x0, x1, 13, 15, 26, 6)
    x0, x1 = (x0 + a) & _MASK, (x1 + b + _U(3)) & _MASK
    x0, x1 = _rounds4(x0, x1, 17, 29, 16, 24)
    x0, x1 = (x0 + b) & _MASK, (x1 + c + _U(4)) & _MASK
    x0, x1 = _rounds4(x0, x1, 13, 15, 26, 6)
    x0, x1 = (x0 + c) & _MASK, (x1 + a + _U(5)) & _MASK
    out[i] = np.uint32(x0 ^ x1)


@numba.njit(nogil=True, cache=True)
def _sorted_by(words, order):
  """``order[argsort(words, stable=True)]``: two LSD radix passes of 16 bits."""
  n = words.shape[0]
  mid_idx = np.empty(n, np.int32)
  mid_hi = np.empty(n, np.uint32)
  out = np.empty_like(order)
  count = np.zeros(65537, np.int64)
  for i in range(n):
    count[(words[i] & 0xFFFF) + 1] += 1
  for j in range(65536):
    count[j + 1] += count[j]
  for i in range(n):
    d = words[i] & 0xFFFF
    p = count[d]
    count[d] = p + 1
    mid_idx[p] = i
    mid_hi[p] = words[i] >> 16
  count[:] = 0
  for i in range(n):
    count[mid_hi[i] + 1] += 1
  for j in range(65536):
    count[j + 1] += count[j]
  for i in range(n):
    d = mid_hi[i]
    p = count[d]
    count[d] = p + 1
    out[p] = order[mid_idx[i]]
  return out


@numba.njit(nogil=True, cache=True)
def _permutation(round_keys, n):
  """The permutation of ``0 .. n-1`` from ``(rounds, 2)`` uint32 round-key data."""
  order = np.arange(n).astype(np.int32)
  words = np.empty(n, np.uint32)
  for r in range(round_keys.shape[0]):
    _threefry_bits(round_keys[r, 0], round_keys[r, 1], words)
    order = _sorted_by(words, order)
  return order


def _permutation_by(words: np.ndarray) -> np.ndarray:
  """The permutation from ``(rounds, n)`` sort words drawn on the device."""
  order = np.arange(words.shape[1], dtype=np.int32)
  for w in words:
    order = _sorted_by(w, order)
  return order
