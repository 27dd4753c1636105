"""The activation functions of the course, addressable by name.

Each is an elementwise pure function ``(...,) -> (...,)`` (shape preserved);
:func:`get` turns a name (or a callable) into the function, which is how models
accept ``activation="relu"``.
"""

from __future__ import annotations

from typing import Callable, Union

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu",
    "softplus", "softsign", "silu", "swish", "gelu", "mish", "hard_tanh",
    "ACTIVATIONS", "get",
]

Activation = Callable[[jax.Array], jax.Array]


def identity(x: ArrayLike) -> jax.Array:
  """:math:`f(x) = x` (linear unit, the output of a regression).

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.identity(jnp.array([-1.0, 0.0, 2.0]))
  Array([-1.,  0.,  2.], dtype=float32)
  """
  return jnp.asarray(x)


def step(x: ArrayLike) -> jax.Array:
  """Heaviside step of the perceptron: 1 where ``x > 0``, else 0. Zero gradient.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.step(jnp.array([-1.0, 0.0, 2.0]))
  Array([0., 0., 1.], dtype=float32)
  """
  return jnp.where(x > 0, 1.0, 0.0).astype(jnp.result_type(x, jnp.float32))


def sigmoid(x: ArrayLike) -> jax.Array:
  r"""Logistic :math:`\sigma(x) = 1 / (1 + e^{-x})`, range (0, 1).

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.sigmoid(jnp.array([-1.0, 0.0, 2.0]))
  Array([0.26894143, 0.5       , 0.880797  ], dtype=float32)
  """
  return jax.nn.sigmoid(x)


def tanh(x: ArrayLike) -> jax.Array:
  r""":math:`\tanh x = 2\sigma(2x) - 1`, range (-1, 1).

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.tanh(jnp.array([-1.0, 0.0, 2.0]))
  Array([-0.7615942,  0.       ,  0.9640276], dtype=float32)
  """
  return jnp.tanh(x)


def relu(x: ArrayLike) -> jax.Array:
  r"""Rectified linear unit :math:`\max(0, x)`.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.relu(jnp.array([-1.0, 0.0, 2.0]))
  Array([0., 0., 2.], dtype=float32)
  """
  return jax.nn.relu(x)


def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> jax.Array:
  r""":math:`x` for :math:`x > 0`, else ``negative_slope`` :math:`\cdot x`.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.leaky_relu(jnp.array([-1.0, 0.0, 2.0]))
  Array([-0.01,  0.  ,  2.  ], dtype=float32)
  """
  return jnp.where(x > 0, x, negative_slope * x)


def elu(x: ArrayLike, alpha: float = 1.0) -> jax.Array:
  r"""Exponential linear unit: :math:`x` for :math:`x > 0`, else :math:`\alpha(e^x - 1)`.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.elu(jnp.array([-1.0, 0.0, 2.0]))
  Array([-0.63212055,  0.        ,  2.        ], dtype=float32)
  """
  return jax.nn.elu(x, alpha)


def selu(x: ArrayLike) -> jax.Array:
  r"""Scaled ELU, :math:`\lambda\,\mathrm{elu}(x, \alpha)` with the self-normalising constants.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.selu(jnp.array([-1.0, 0.0, 2.0]))
  Array([-1.1113307,  0.       ,  2.101402 ], dtype=float32)
  """
  return jax.nn.selu(x)


def softplus(x: ArrayLike) -> jax.Array:
  r""":math:`\log(1 + e^x)`, a smooth ReLU; its derivative is :math:`\sigma(x)`.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.softplus(jnp.array([-1.0, 0.0, 2.0]))
  Array([0.3132617, 0.6931472, 2.126928 ], dtype=float32)
  """
  return jax.nn.softplus(x)


def softsign(x: ArrayLike) -> jax.Array:
  r""":math:`x / (1 + |x|)`.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.softsign(jnp.array([-1.0, 0.0, 2.0]))
  Array([-0.5      ,  0.       ,  0.6666667], dtype=float32)
  """
  return x / (1 + jnp.abs(x))


def silu(x: ArrayLike) -> jax.Array:
  r"""Sigmoid-weighted linear unit (swish): :math:`x\,\sigma(x)`.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.silu(jnp.array([-1.0, 0.0, 2.0]))
  Array([-0.26894143,  0.        ,  1.761594  ], dtype=float32)
  """
  return jax.nn.silu(x)


swish = silu


def gelu(x: ArrayLike) -> jax.Array:
  r"""Gaussian error linear unit :math:`x\,\Phi(x)`, exact (erf) form.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.gelu(jnp.array([-1.0, 0.0, 2.0]))
  Array([-0.15865527,  0.        ,  1.9544997 ], dtype=float32)
  """
  return jax.nn.gelu(x, approximate=False)


def mish(x: ArrayLike) -> jax.Array:
  r""":math:`x \tanh(\mathrm{softplus}(x))`.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.mish(jnp.array([-1.0, 0.0, 2.0]))
  Array([-0.30340144,  0.        ,  1.943959  ], dtype=float32)
  """
  return x * jnp.tanh(jax.nn.softplus(x))


def hard_tanh(x: ArrayLike) -> jax.Array:
  r""":math:`\mathrm{clip}(x, -1, 1)`.

  >>> import jax.numpy as jnp
  >>> from jaxphys import activations
  >>> activations.hard_tanh(jnp.array([-1.0, 0.0, 2.0]))
  Array([-1.,  0.,  1.], dtype=float32)
  """
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

  >>> from jaxphys import activations
  >>> activations.get("relu") is activations.relu
  True
  >>> activations.get("rectifier")
  Traceback (most recent call last):
  ...
  ValueError: unknown activation 'rectifier'; known: elu, gelu, hard_tanh, ...
  """
  if callable(activation):
    return activation
  try:
    return ACTIVATIONS[activation]
  except (KeyError, TypeError):
    raise ValueError(
        f"unknown activation {activation!r}; known: {', '.join(sorted(ACTIVATIONS))}"
    ) from None
