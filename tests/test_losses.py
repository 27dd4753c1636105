import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxphys as jp


def _bce_reference(z, y):
  p = 1.0 / (1.0 + np.exp(-z))
  return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_bce_matches_closed_form():
  rng = np.random.default_rng(0)
  z = rng.normal(scale=3, size=64)
  y = rng.integers(0, 2, 64)
  out = jp.binary_cross_entropy(z.astype(np.float32), y)
  assert out.shape == (64,)
  np.testing.assert_allclose(out, _bce_reference(z, y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("z,y,expected", [(100.0, 1, 0.0), (100.0, 0, 100.0),
                                          (-100.0, 0, 0.0), (-100.0, 1, 100.0)])
def test_bce_is_stable_at_large_logits(z, y, expected):
  loss, grad = jax.value_and_grad(jp.binary_cross_entropy)(jnp.float32(z), jnp.float32(y))
  assert np.isfinite(loss) and np.isfinite(grad)
  np.testing.assert_allclose(loss, expected, atol=1e-6)
  # d loss / dz = sigmoid(z) - y exactly.
  np.testing.assert_allclose(grad, 1 / (1 + np.exp(-z)) - y, atol=1e-6)


def test_bce_gradients_match_finite_differences():
  z = jnp.array([-3.0, -0.5, 0.0, 0.7, 4.0])
  y = jnp.array([0.0, 1.0, 1.0, 0.0, 1.0])
  check_grads(lambda z: jp.binary_cross_entropy(z, y).sum(), (z,), order=2, eps=1e-2)


def test_softmax_ce_matches_closed_form_and_one_hot():
  rng = np.random.default_rng(1)
  z = rng.normal(scale=2, size=(32, 5)).astype(np.float32)
  y = rng.integers(0, 5, 32)
  zz = z.astype(np.float64)
  ref = np.log(np.exp(zz).sum(1)) - zz[np.arange(32), y]
  out = jp.softmax_cross_entropy(z, y)
  assert out.shape == (32,)
  np.testing.assert_allclose(out, ref, rtol=1e-5)
  np.testing.assert_allclose(jp.softmax_cross_entropy(z, jp.one_hot(y, 5)), ref, rtol=1e-5)


def test_softmax_ce_stable_and_two_class_equals_bce():
  z = jnp.array([[100.0, -100.0], [-100.0, 100.0]])
  np.testing.assert_allclose(jp.softmax_cross_entropy(z, jnp.array([0, 0])), [0.0, 200.0], atol=1e-5)
  rng = np.random.default_rng(2)
  z = rng.normal(size=(20, 2)).astype(np.float32)
  y = rng.integers(0, 2, 20)
  np.testing.assert_allclose(jp.softmax_cross_entropy(z, y),
                             jp.binary_cross_entropy(z[:, 1] - z[:, 0], y), rtol=1e-5, atol=1e-6)


def test_softmax_ce_gradients():
  z = jnp.array([[0.3, -1.2, 2.0], [1.0, 0.0, -0.5]])
  y = jnp.array([2, 0])
  check_grads(lambda z: jp.softmax_cross_entropy(z, y).sum(), (z,), order=2, eps=1e-2)
  # d loss / dz = softmax(z) - onehot(y).
  g = jax.grad(lambda z: jp.softmax_cross_entropy(z, y).sum())(z)
  np.testing.assert_allclose(g, jax.nn.softmax(z) - jp.one_hot(y, 3), atol=1e-6)


def test_one_hot():
  np.testing.assert_array_equal(jp.one_hot(jnp.array([0, 2]), 3), [[1, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_bce_equals_optax_at_any_logit(dtype):
  import optax
  z = jnp.concatenate([-jnp.logspace(-8, 3, 200), jnp.zeros(1), jnp.logspace(-8, 3, 200)]).astype(dtype)
  for label in (0.0, 1.0, 0.3):
    y = jnp.full(z.shape, label, dtype)
    np.testing.assert_array_equal(jp.binary_cross_entropy(z, y), optax.sigmoid_binary_cross_entropy(z, y))
    g_ours = jax.grad(lambda z: jp.binary_cross_entropy(z, y).sum())(z)
    g_optax = jax.grad(lambda z: optax.sigmoid_binary_cross_entropy(z, y).sum())(z)
    np.testing.assert_array_equal(g_ours, g_optax)


def test_bce_float32_is_accurate_for_y1_at_large_logits():
  # The old softplus(z) - y z lost everything from z ~ 14.6 on: compare with float64.
  z = np.array([5.0, 10.0, 14.6, 20.0, 40.0, 80.0])
  ref = np.log1p(np.exp(-z))  # -log sigmoid(z), accurate in float64
  out = jp.binary_cross_entropy(z.astype(np.float32), np.ones(6, np.float32))
  np.testing.assert_allclose(out, ref, rtol=1e-6)
  grad = jax.grad(lambda z: jp.binary_cross_entropy(z, jnp.ones(6)).sum())(z.astype(np.float32))
  np.testing.assert_allclose(grad, -1 / (1 + np.exp(z)), rtol=1e-5)  # sigmoid(z) - 1 = -sigmoid(-z)


def test_loss_shapes_are_checked():
  with pytest.raises(ValueError, match=r"^labels: shape \(4, 4\) does not match logits' shape \(4,\)"):
    jp.binary_cross_entropy(jnp.zeros(4), jnp.zeros((4, 4)))
  np.testing.assert_allclose(jp.binary_cross_entropy(jnp.zeros((4, 1)), jnp.ones(4)), np.full((4, 1), np.log(2)),
                             rtol=1e-6)  # an (n, 1) column is (n,)
  with pytest.raises(ValueError, match=r"^labels: shape \(3,\) matches neither"):
    jp.softmax_cross_entropy(jnp.zeros((4, 3)), jnp.zeros(3, int))
  with pytest.raises(ValueError, match=r"^labels: integer class labels must be in \[0, 3\)"):
    jp.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 3]))
  with pytest.raises(ValueError, match=r"^labels: integer class labels must be in \[0, 3\)"):
    jp.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.array([-1, 0]))
