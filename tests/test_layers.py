import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxphys._layers import Dropout, keep_mask, pool2d


@pytest.mark.parametrize("kind,flax_pool", [("max", nn.max_pool), ("avg", nn.avg_pool)])
@pytest.mark.parametrize("size", [2, 3])
def test_pool2d_equals_flax_pooling_with_gradients_and_ties(kind, flax_pool, size):
  x = jnp.round(jax.random.normal(jax.random.key(1), (2, 9, 8, 3)), 0)  # many exact ties
  x = x.at[0, :4, :4].set(1.0)
  ref = lambda x: flax_pool(x, (size, size), strides=(size, size))
  ours = lambda x: pool2d(x, size, kind)
  np.testing.assert_array_equal(ours(x), ref(x))
  g = jax.random.normal(jax.random.key(2), ref(x).shape)
  # Identical gradients: ties go to the first maximum in row-major order, as in XLA.
  np.testing.assert_array_equal(jax.vjp(ours, x)[1](g)[0], jax.vjp(ref, x)[1](g)[0])
  assert ours(x).shape == (2, 9 // size, 8 // size, 3)


def _numpy_keep_mask(key, shape, rate, bits):
  """The documented layout, from the same words: field i // W of word i % W."""
  n, per_word = int(np.prod(shape)), 32 // bits
  w = -(-n // per_word)
  words = np.asarray(jax.random.bits(key, (w,), jnp.uint32)).astype(np.uint64)
  i = np.arange(n)
  fields = (words[i % w] >> (bits * (i // w)).astype(np.uint64)) & ((1 << bits) - 1)
  return (fields >= rate * (1 << bits)).reshape(shape)


@pytest.mark.parametrize("rate,bits", [(0.5, 1), (0.25, 2), (0.75, 2), (0.125, 4),
                                       (0.6875, 4), (3 / 256, 8)])
@pytest.mark.parametrize("shape", [(64, 6, 6, 32), (5, 7)])
def test_keep_mask_is_the_documented_bits(rate, bits, shape):
  key = jax.random.key(3)
  mask = keep_mask(key, shape, rate)
  assert mask.shape == shape and mask.dtype == jnp.bool_
  np.testing.assert_array_equal(mask, _numpy_keep_mask(key, shape, rate, bits))


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.125, 0.1, 0.3])
def test_keep_mask_is_bernoulli_with_independent_neighbours(rate):
  n = 1 << 20
  mask = np.asarray(keep_mask(jax.random.key(4), (n,), rate))
  p = 1 - rate
  sigma = np.sqrt(p * (1 - p) / n)
  assert abs(mask.mean() - p) < 5 * sigma
  # Elements that share a random word (i and i + W), and adjacent elements, are
  # independent: their joint keep frequency is p^2.
  w = n // {0.5: 32, 0.25: 16, 0.125: 8}.get(rate, 32)  # words drawn
  for a, b in [(mask[:-w], mask[w:]), (mask[:-1], mask[1:])]:
    joint, s2 = (a & b).mean(), np.sqrt(p * p * (1 - p * p) / a.size)
    assert abs(joint - p * p) < 5 * s2, (joint, p * p)
  # Different keys, different masks.
  assert (np.asarray(keep_mask(jax.random.key(5), (n,), rate)) != mask).mean() > 0.1


def test_keep_mask_falls_back_to_bernoulli_and_checks_the_rate():
  key = jax.random.key(6)
  np.testing.assert_array_equal(keep_mask(key, (9, 5), 0.3), jax.random.bernoulli(key, 0.7, (9, 5)))
  with pytest.raises(ValueError, match="rate must be in"):
    keep_mask(key, (3,), 1.5)


@pytest.mark.parametrize("rate", [0.25, 0.3])
def test_dropout_scales_kept_values_and_its_gradient_is_the_mask(rate):
  x = jax.random.normal(jax.random.key(7), (32, 4, 4, 16))
  key, rngs = jax.random.key(8), {"dropout": jax.random.key(8)}
  layer = Dropout(rate)
  y = layer.apply({}, x, deterministic=False, rng=key)
  keep = np.asarray(keep_mask(key, x.shape, rate))
  np.testing.assert_allclose(y, np.where(keep, x / (1 - rate), 0), rtol=1e-6)
  g = jax.grad(lambda x: jnp.sum(layer.apply({}, x, deterministic=False, rng=key) * 2.0))(x)
  np.testing.assert_allclose(g, np.where(keep, 2.0 / (1 - rate), 0.0), rtol=1e-6)
  # From the "dropout" stream: a key derived from it, a mask of the same law.
  z = layer.apply({}, x, deterministic=False, rngs=rngs)
  np.testing.assert_allclose(z[z != 0], (x / (1 - rate))[z != 0], rtol=1e-6)
  assert abs(float(jnp.mean(z == 0)) - rate) < 0.05
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
  np.testing.assert_array_equal(Dropout(0.0).apply({}, x, deterministic=False, rngs=rngs), x)
  np.testing.assert_array_equal(Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs), 0 * x)


def test_dropout_is_flax_dropout_for_other_rates_and_shares_masks_over_broadcast_dims():
  x = jax.random.normal(jax.random.key(9), (8, 5, 6))
  rngs = {"dropout": jax.random.key(10)}
  for kw in [{"rate": 0.3}, {"rate": 0.3, "broadcast_dims": (1,)}]:
    np.testing.assert_array_equal(Dropout(**kw).apply({}, x, deterministic=False, rngs=rngs),
                                  nn.Dropout(**kw).apply({}, x, deterministic=False, rngs=rngs))
  y = Dropout(0.5, broadcast_dims=(-1,)).apply({}, x, deterministic=False, rngs=rngs)
  np.testing.assert_array_equal(y == 0, jnp.broadcast_to((y == 0)[..., :1], y.shape))
  assert 0.3 < float(jnp.mean(y == 0)) < 0.7
