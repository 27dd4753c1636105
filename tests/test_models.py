import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxphys as jp


def _init(model, x):
  return model.init(jax.random.key(0), x)["params"]


def _count(params):
  return sum(p.size for p in jax.tree_util.tree_leaves(params))


def test_logistic_regression_is_affine():
  x = jax.random.normal(jax.random.key(1), (7, 3, 2))
  model = jp.LogisticRegression()
  p = _init(model, x)
  out = model.apply({"params": p}, x)
  chex.assert_shape(out, (7,))
  ref = x.reshape(7, 6) @ p["Dense_0"]["kernel"][:, 0] + p["Dense_0"]["bias"][0]
  np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_softmax_regression_shape():
  x = jnp.ones((4, 28, 28, 1))
  model = jp.SoftmaxRegression(10)
  p = _init(model, x)
  chex.assert_shape(model.apply({"params": p}, x), (4, 10))
  assert _count(p) == 784 * 10 + 10


def test_mlp_shapes_activation_and_binary_head():
  x = jnp.ones((5, 18))
  deep = jp.MLP((300, 300, 300, 300, 1), activation="tanh")
  p = _init(deep, x)
  chex.assert_shape(deep.apply({"params": p}, x), (5,))
  assert _count(p) == 18 * 300 + 300 + 3 * (300 * 300 + 300) + 301
  # A linear activation makes the MLP one affine map: check against a matrix product.
  lin = jp.MLP((4, 3), activation="identity")
  p = _init(lin, x)
  ref = (x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]) @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
  np.testing.assert_allclose(lin.apply({"params": p}, x), ref, rtol=1e-5)


def test_dropout_only_in_training():
  x = jnp.ones((3, 20))
  model = jp.MLP((64, 2), dropout=0.5)
  p = _init(model, x)
  ev = model.apply({"params": p}, x)
  np.testing.assert_array_equal(ev, model.apply({"params": p}, x))
  a = model.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.key(1)})
  b = model.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.key(2)})
  c = model.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.key(1)})
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(a, c)


def test_default_cnn_is_the_keras_mnist_cnn():
  x = jnp.ones((2, 28, 28, 1))
  model = jp.CNN()
  p = _init(model, x)
  chex.assert_shape(model.apply({"params": p}, x), (2, 10))
  # Keras' model.summary() of the classic MNIST CNN: 1,199,882 parameters.
  assert _count(p) == 1_199_882
  chex.assert_shape(p["Conv_0"]["kernel"], (3, 3, 1, 32))
  chex.assert_shape(p["Conv_1"]["kernel"], (3, 3, 32, 64))
  chex.assert_shape(p["Dense_0"]["kernel"], (12 * 12 * 64, 128))


def test_cnn_is_configurable():
  x = jnp.ones((2, 32, 32, 3))
  model = jp.CNN(conv_features=(16, 16, 32, 32), padding="SAME", pool="avg",
                 dense_features=(64, 32), num_classes=1, activation="elu")
  p = _init(model, x)
  chex.assert_shape(model.apply({"params": p}, x), (2,))
  chex.assert_shape(p["Dense_0"]["kernel"], (8 * 8 * 32, 64))


def test_cnn_rejects_flat_input():
  with pytest.raises(ValueError, match=r"CNN expects \(batch, height, width, channels\)"):
    jp.CNN().init(jax.random.key(0), jnp.ones((2, 784)))
  with pytest.raises(ValueError, match="CNN padding must be 'VALID' or 'SAME', got 'FULL'"):
    jp.CNN(padding="FULL").init(jax.random.key(0), jnp.ones((2, 28, 28, 1)))


def _conv_reference(x, kernel, bias, padding):
  """Cross-correlation with explicit windows in NumPy (float64)."""
  k = kernel.shape[0]
  if padding == "SAME":
    x = np.pad(x, ((0, 0), ((k - 1) // 2, k // 2), ((k - 1) // 2, k // 2), (0, 0)))
  windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # (n,h,w,c,k,k)
  return np.einsum("nhwcij,ijco->nhwo", windows, kernel) + bias


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_cnn_forward_equals_a_numpy_reference(padding):
  x = np.asarray(jax.random.normal(jax.random.key(0), (3, 9, 8, 2)))
  model = jp.CNN(conv_features=(4, 5), padding=padding, dense_features=(6,), num_classes=3)
  p = jax.tree_util.tree_map(np.float64, _init(model, jnp.asarray(x)))
  h = np.maximum(_conv_reference(x, p["Conv_0"]["kernel"], p["Conv_0"]["bias"], padding), 0)
  h = np.maximum(_conv_reference(h, p["Conv_1"]["kernel"], p["Conv_1"]["bias"], padding), 0)
  n, hh, ww, c = h.shape
  h = h[:, :hh // 2 * 2, :ww // 2 * 2].reshape(n, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))
  h = np.maximum(h.reshape(n, -1) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0)
  ref = h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
  np.testing.assert_allclose(model.apply({"params": _init(model, jnp.asarray(x))}, x), ref,
                             rtol=1e-4, atol=1e-5)
