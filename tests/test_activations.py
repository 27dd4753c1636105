import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from jaxphys import activations

X = np.linspace(-6, 6, 241)
SIG = 1 / (1 + np.exp(-X))

REFERENCE = {
    "identity": X, "linear": X, "step": (X > 0).astype(float), "sigmoid": SIG, "tanh": np.tanh(X),
    "relu": np.maximum(X, 0), "leaky_relu": np.where(X > 0, X, 0.01 * X),
    "elu": np.where(X > 0, X, np.expm1(X)),
    "selu": 1.0507009873554805 * np.where(X > 0, X, 1.6732632423543772 * np.expm1(X)),
    "softplus": np.log1p(np.exp(X)), "softsign": X / (1 + np.abs(X)), "silu": X * SIG,
    "swish": X * SIG, "gelu": X * 0.5 * (1 + special.erf(X / np.sqrt(2))),
    "mish": X * np.tanh(np.log1p(np.exp(X))), "hard_tanh": np.clip(X, -1, 1),
}


def test_catalogue_is_complete():
  assert set(REFERENCE) == set(activations.ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_matches_formula(name):
  out = activations.get(name)(jnp.asarray(X, jnp.float32))
  assert out.shape == X.shape
  np.testing.assert_allclose(out, REFERENCE[name], rtol=1e-5, atol=1e-6)


def test_derivatives():
  d = jax.vmap(jax.grad(activations.sigmoid))(jnp.asarray(X, jnp.float32))
  np.testing.assert_allclose(d, SIG * (1 - SIG), atol=1e-6)
  d = jax.vmap(jax.grad(activations.softplus))(jnp.asarray(X, jnp.float32))
  np.testing.assert_allclose(d, SIG, atol=1e-6)


def test_unknown_name_lists_known_ones():
  with pytest.raises(ValueError, match="unknown activation 'relu6'; known: elu"):
    activations.get("relu6")
  assert activations.get(jnp.sin) is jnp.sin
