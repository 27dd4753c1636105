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


def _conv_strided(x, kernel, stride):
  """SAME-padded cross-correlation with a stride, as XLA pads it (extra row/column at the end)."""
  k, h = kernel.shape[0], x.shape[1]
  out = -(-h // stride)
  total = max((out - 1) * stride + k - h, 0)
  lo, hi = total // 2, total - total // 2
  x = np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
  windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
  return np.einsum("nhwcij,ijco->nhwo", windows, kernel)


def _resnet_reference(x, p, s, train):
  """The ResNet's forward pass in NumPy (float64); with ``train`` BatchNorm uses the
  batch's statistics and the new running averages are returned too."""
  new = {}

  def bn(h, name, prefix):
    if train:
      mean, var = h.mean((0, 1, 2)), h.var((0, 1, 2))
      new[prefix + name] = (0.9 * s[prefix + name]["mean"] + 0.1 * mean, 0.9 * s[prefix + name]["var"] + 0.1 * var)
    else:
      mean, var = s[prefix + name]["mean"], s[prefix + name]["var"]
    q = p[prefix + name]
    return (h - mean) / np.sqrt(var + 1e-5) * q["scale"] + q["bias"]

  relu = lambda h: np.maximum(h, 0)
  h = relu(bn(_conv_strided(x, p["Conv_0"]["kernel"], 1), "BatchNorm_0", ""))
  for i, stride in enumerate((2, 2)):
    b = f"ResidualBlock_{i}/"
    y = relu(bn(_conv_strided(h, p[b + "Conv_0"]["kernel"], stride), "BatchNorm_0", b))
    y = bn(_conv_strided(y, p[b + "Conv_1"]["kernel"], 1), "BatchNorm_1", b)
    skip = h
    if b + "Conv_2" in p:
      skip = bn(_conv_strided(h, p[b + "Conv_2"]["kernel"], stride), "BatchNorm_2", b)
    h = relu(skip + y)
  out = h.mean((1, 2)) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
  return out, new


def _flat(tree, prefix=""):
  """``{"a": {"b": {"kernel": ...}}}`` -> ``{"a/b": {"kernel": ...}}`` down to layer level."""
  out = {}
  for k, v in tree.items():
    if any(isinstance(u, dict) for u in v.values()):
      out.update(_flat(v, prefix + k + "/"))
    else:
      out[prefix + k] = jax.tree_util.tree_map(np.float64, v)
  return out


def test_resnet_equals_a_numpy_reference_in_training_and_evaluation():
  x = np.asarray(jax.random.normal(jax.random.key(0), (3, 8, 8, 2)))
  model = jp.ResNet(stage_features=(4, 6), num_classes=3)
  variables = model.init(jax.random.key(1), x)
  # Running statistics other than the initial 0 / 1, so evaluation must use them.
  stats = jax.tree_util.tree_map(lambda a: a + 0.3 * jax.random.uniform(jax.random.key(2), a.shape),
                                 variables["batch_stats"])
  variables = {"params": variables["params"], "batch_stats": stats}
  p, s = _flat(variables["params"]), _flat(stats)
  out, new = _resnet_reference(x, p, s, train=True)
  logits, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(logits, out, rtol=1e-4, atol=1e-5)
  got = _flat(updated["batch_stats"])
  for name, (mean, var) in new.items():
    np.testing.assert_allclose(got[name]["mean"], mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[name]["var"], var, rtol=1e-4, atol=1e-6)
  out, _ = _resnet_reference(x, p, s, train=False)
  np.testing.assert_allclose(model.apply(variables, x, train=False), out, rtol=1e-4, atol=1e-5)
  # Evaluation does not depend on the batch: one example alone gives its row.
  np.testing.assert_allclose(model.apply(variables, x[1:2]), model.apply(variables, x)[1:2], rtol=1e-5, atol=1e-6)
  binary = jp.ResNet(stage_features=(4, 6), num_classes=1)
  assert binary.apply(binary.init(jax.random.key(0), x), x).shape == (3,)
