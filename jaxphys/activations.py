"""The activation functions of the course, addressable by name.

Each is an elementwise pure function ``(...,) -> (...,)`` (shape preserved);
:func:`get` turns a name (or a callable) into the function, which is how models
accept ``activation="relu"``.
"""

from __future__ import annotations

from typing import Callable, Union

import jax
import jax.numpy as jnp

__all__ = [
    "identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu",
    "softplus", "softsign", "silu", "swish", "gelu", "mish", "hard_tanh",
    "ACTIVATIONS", "get",
]

Activation = Callable[[jax.Array], jax.Array]


def identity(x):
  """:math:`f(x) = x` (linear unit, the output of a regression)."""
  return x


def step(x):
  """Heaviside step of the perceptron: 1 where ``x > 0``, else 0. Zero gradient."""
  return jnp.where(x > 0, 1.0, 0.0).astype(jnp.result_type(x, jnp.float32))


def sigmoid(x):
  r"""Logistic :math:`\sigma(x) = 1 / (1 + e^{-x})`, range (0, 1)."""
  return jax.nn.sigmoid(x)


def tanh(x):
  r""":math:`\tanh x = 2\sigma(2x) - 1`, range (-1, 1)."""
  return jnp.tanh(x)


def relu(x):
  r"""Rectified linear unit :math:`\max(0, x)`."""
  return jax.nn.relu(x)


def leaky_relu(x, negative_slope: float = 0.01):
  r""":math:`x` for :math:`x > 0`, else ``negative_slope`` :math:`\cdot x`."""
  return jnp.where(x > 0, x, negative_slope * x)


def elu(x, alpha: float = 1.0):
  r"""Exponential linear unit: :math:`x` for :math:`x > 0`, else :math:`\alpha(e^x - 1)`."""
  return jax.nn.elu(x, alpha)


def selu(x):
  r"""Scaled ELU, :math:`\lambda\,\mathrm{elu}(x, \alpha)` with the self-normalising constants."""
  return jax.nn.selu(x)


def softplus(x):
  r""":math:`\log(1 + e^x)`, a smooth ReLU; its derivative is :math:`\sigma(x)`."""
  return jax.nn.softplus(x)


def softsign(x):
  r""":math:`x / (1 + |x|)`."""
  return x / (1 + jnp.abs(x))


def silu(x):
  r"""Sigmoid-weighted linear unit (swish): :math:`x\,\sigma(x)`."""
  return jax.nn.silu(x)


swish = silu


def gelu(x):
  r"""Gaussian error linear unit :math:`x\,\Phi(x)`, exact (erf) form."""
  return jax.nn.gelu(x, approximate=False)


def mish(x):
  r""":math:`x \tanh(\mathrm{softplus}(x))`."""
  return x * jnp.tanh(jax.nn.softplus(x))


def hard_tanh(x):
  """:math:`\\mathrm{clip}(x, -1, 1)`."""
  return jnp.clip(x, -1.0, 1.0)


ACTIVATIONS: dict[str, Activation] = {
    "identity": identity, "linear": identity, "step": step, "sigmoid": sigmoid,
    "tanh": tanh, "relu": relu, "leaky_relu": leaky_relu, "elu": elu, "selu": selu,
    "softplus": softplus, "softsign": softsign, "silu": silu, "swish": swish,
    "gelu": gelu, "mish": mish, "hard_tanh": hard_tanh,
}


def get(activation: Union[str, Activation]) -> Activation:
  """Returns the activation named ``activation`` (a key of :data:`ACTIVATIONS`).

  A callable is returned unchanged. An unknown name raises ``ValueError`` listing the
  known ones.
  """
  if callable(activation):
    return activation
  try:
    return ACTIVATIONS[activation]
  except (KeyError, TypeError):
    raise ValueError(
        f"unknown activation {activation!r}; known: {', '.join(sorted(ACTIVATIONS))}"
    ) from None
