import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxphys as jp


@pytest.fixture
def params():
  model = jp.MLP((4, 3, 2))
  p = model.init(jax.random.key(0), jnp.ones((1, 5)))["params"]
  # Non-zero biases, so that including them would change every value.
  return jax.tree_util.tree_map(lambda a: a + 0.5 if a.ndim == 1 else a, p)


def _kernels(p):
  return [p[layer]["kernel"] for layer in sorted(p)]


def test_values_exclude_biases(params):
  ks = [np.asarray(k, np.float64) for k in _kernels(params)]
  np.testing.assert_allclose(jp.l1(params), sum(np.abs(k).sum() for k in ks), rtol=1e-6)
  np.testing.assert_allclose(jp.l2(params), 0.5 * sum((k ** 2).sum() for k in ks), rtol=1e-6)
  np.testing.assert_allclose(jp.elastic_net(params, 0.3),
                             0.3 * jp.l1(params) + 0.7 * jp.l2(params), rtol=1e-6)


def test_gradients_closed_form(params):
  g2 = jax.grad(jp.l2)(params)
  g1 = jax.grad(jp.l1)(params)
  for layer in params:
    np.testing.assert_allclose(g2[layer]["kernel"], params[layer]["kernel"], rtol=1e-6)
    np.testing.assert_allclose(g1[layer]["kernel"], np.sign(params[layer]["kernel"]))
    np.testing.assert_array_equal(g2[layer]["bias"], 0.0)
    np.testing.assert_array_equal(g1[layer]["bias"], 0.0)


def test_mask_selects_leaves(params):
  everything = jax.tree_util.tree_map(lambda _: True, params)
  total = sum(0.5 * (np.asarray(a, np.float64) ** 2).sum() for a in jax.tree_util.tree_leaves(params))
  np.testing.assert_allclose(jp.l2(params, mask=everything), total, rtol=1e-6)
  only_first = lambda p: {k: {"kernel": k == "Dense_0", "bias": False} for k in p}
  np.testing.assert_allclose(jp.l1(params, mask=only_first),
                             jnp.abs(params["Dense_0"]["kernel"]).sum(), rtol=1e-6)


def test_mask_structure_mismatch_is_an_error(params):
  with pytest.raises(ValueError, match="mask has 1 leaves"):
    jp.l2(params, mask=[True])
