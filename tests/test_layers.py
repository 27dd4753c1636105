import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxphys.layers import Conv, conv2d


def _xla_conv(x, k, padding):
  return jax.lax.conv_general_dilated(x, k, (1, 1), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("ksize", [2, 3, 5])
def test_conv2d_and_gradients_equal_xla(padding, ksize):
  kx, kk, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (3, 9, 8, 4))
  k = jax.random.normal(kk, (ksize, ksize, 4, 5))
  out = conv2d(x, k, padding)
  ref = _xla_conv(x, k, padding)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  g = jax.random.normal(kg, out.shape)
  ours = jax.vjp(lambda x, k: conv2d(x, k, padding), x, k)[1](g)
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
