import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxphys.layers import Conv, conv2d, pool2d


def _xla_conv(x, k, padding):
  return jax.lax.conv_general_dilated(x, k, (1, 1), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("ksize", [2, 3, 5])
@pytest.mark.parametrize("cin", [4, 16])  # 16+: the training forward pass is SAME + crop
def test_conv2d_and_gradients_equal_xla(padding, ksize, cin):
  kx, kk, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (3, 9, 8, cin))
  k = jax.random.normal(kk, (ksize, ksize, cin, 5))
  out = conv2d(x, k, padding)
  ref = _xla_conv(x, k, padding)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
  out_train, pull = jax.vjp(lambda x, k: conv2d(x, k, padding), x, k)
  np.testing.assert_allclose(out_train, ref, rtol=1e-5, atol=1e-4)
  g = jax.random.normal(kg, out.shape)
  ours = pull(g)
  theirs = jax.vjp(lambda x, k: _xla_conv(x, k, padding), x, k)[1](g)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv2d_gradients_match_finite_differences():
  with jax.enable_x64(True):  # float64 makes the finite differences tight
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 2), jnp.float64)
    k = jax.random.normal(jax.random.key(2), (3, 3, 2, 3), jnp.float64)
    check_grads(lambda x, k: jnp.sum(jnp.sin(conv2d(x, k))), (x, k), order=1, modes=["rev"],
                eps=1e-4)


def test_conv_module_matches_flax_conv():
  x = jax.random.normal(jax.random.key(3), (2, 7, 7, 3))
  ours, theirs = Conv(6, 3, "SAME"), nn.Conv(6, (3, 3), padding="SAME")
  p = theirs.init(jax.random.key(4), x)
  assert jax.tree_util.tree_structure(ours.init(jax.random.key(4), x)) == jax.tree_util.tree_structure(p)
  np.testing.assert_allclose(ours.apply(p, x), theirs.apply(p, x), rtol=1e-5, atol=1e-5)


def test_bad_padding():
  with pytest.raises(ValueError, match="padding must be 'VALID' or 'SAME'"):
    conv2d(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), "FULL")


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
