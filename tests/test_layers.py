import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxphys._layers import pool2d


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
