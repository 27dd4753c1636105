"""The course's models as Flax linen modules (pure ``init`` / ``apply``).

All models take inputs of shape ``(batch, ...)``; dense models flatten everything but
the batch axis, so MNIST images ``(batch, 28, 28, 1)`` and SUSY events
``(batch, 18)`` both work. They return logits: ``(batch, C)`` for ``C`` classes, or
``(batch,)`` when the model has a single output (binary problems, for
:func:`jaxphys.losses.binary_cross_entropy`). Every ``__call__`` takes
``train: bool``; dropout, when used, draws from the ``"dropout"`` rng stream, e.g.
``model.apply({"params": p}, x, train=True, rngs={"dropout": key})``.
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxphys import activations
from jaxphys._layers import Dropout, pool2d

__all__ = ["LogisticRegression", "SoftmaxRegression", "MLP", "CNN", "ResNet", "ResidualBlock"]

Activation = Union[str, Callable[[jax.Array], jax.Array]]


def _flatten(x: jax.Array) -> jax.Array:
  return jnp.reshape(x, (x.shape[0], -1))


def _logits(x: jax.Array) -> jax.Array:
  """Squeezes a single output column to ``(batch,)``."""
  return x[:, 0] if x.shape[-1] == 1 else x


class LogisticRegression(nn.Module):
  r"""One logit :math:`z = w \cdot x + b`; :math:`p(y=1|x) = \sigma(z)`.

  ``(batch, ...) -> (batch,)`` logits.

  >>> import jax, jax.numpy as jnp
  >>> m = LogisticRegression()
  >>> m.apply(m.init(jax.random.key(0), jnp.ones((1, 3))), jnp.ones((4, 3))).shape
  (4,)
  """

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return nn.Dense(1)(_flatten(x))[:, 0]


class SoftmaxRegression(nn.Module):
  r"""Multinomial logistic regression :math:`z = W x + b`, :math:`p = \mathrm{softmax}(z)`.

  ``(batch, ...) -> (batch, num_classes)`` logits.

  >>> import jax, jax.numpy as jnp
  >>> m = SoftmaxRegression(3)
  >>> m.apply(m.init(jax.random.key(0), jnp.ones((1, 4))), jnp.ones((2, 4))).shape
  (2, 3)
  """

  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return nn.Dense(self.num_classes)(_flatten(x))


class MLP(nn.Module):
  """A fully connected network.

  Attributes:
    features: widths of all layers, the last being the output: ``(512, 512, 10)`` is
      two hidden layers of 512 and 10 logits; ``(300, 300, 300, 300, 1)`` is the SUSY
      deep network with a single logit.
    activation: name (see :mod:`jaxphys.activations`) or callable, for hidden layers.
    dropout: dropout rate after every hidden activation (0 disables it).

  ``(batch, ...) -> (batch, features[-1])`` logits, or ``(batch,)`` if
  ``features[-1] == 1``.

  >>> import jax, jax.numpy as jnp
  >>> m = MLP((8, 1), activation="tanh")
  >>> m.apply(m.init(jax.random.key(0), jnp.ones((1, 18))), jnp.ones((5, 18))).shape
  (5,)
  """

  features: Sequence[int] = (512, 512, 10)
  activation: Activation = "relu"
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = activations.get(self.activation)
    x = _flatten(x)
    for width in self.features[:-1]:
      x = act(nn.Dense(width)(x))
      if self.dropout > 0:
        x = Dropout(self.dropout, deterministic=not train)(x)
    return _logits(nn.Dense(self.features[-1])(x))


class CNN(nn.Module):
  """A convolutional network: conv stacks with pooling, then a fully connected head.

  The default is the classic Keras MNIST CNN: conv 32 3x3 ReLU, conv 64 3x3 ReLU,
  2x2 max-pool, dropout 0.25, dense 128 ReLU, dropout 0.5, dense 10
  (1,199,882 parameters on 28x28x1 inputs).

  Attributes:
    conv_features: output channels of each convolution, in order.
    pool_every: pool (then apply ``conv_dropout``) after every this many
      convolutions, and after the last one if it was not just pooled.
    kernel_size: square kernel side, in pixels.
    padding: ``"VALID"`` (Keras default) or ``"SAME"``.
    pool: ``"max"`` or ``"avg"``; ``pool_size`` is its square window and stride.
    conv_dropout: dropout rate after each pooling (0 disables it).
    dense_features: hidden widths of the head.
    dense_dropout: dropout rate after each hidden dense layer.
    num_classes: number of output logits (1 gives ``(batch,)`` binary logits).
    activation: name or callable, after every convolution and hidden dense layer.

  ``(batch, height, width, channels) -> (batch, num_classes)`` logits.

  >>> import jax, jax.numpy as jnp
  >>> m = CNN(conv_features=(4,), dense_features=(8,), num_classes=3)
  >>> m.apply(m.init(jax.random.key(0), jnp.ones((1, 8, 8, 1))), jnp.ones((2, 8, 8, 1))).shape
  (2, 3)
  """

  conv_features: Sequence[int] = (32, 64)
  pool_every: int = 2
  kernel_size: int = 3
  padding: str = "VALID"
  pool: str = "max"
  pool_size: int = 2
  conv_dropout: float = 0.25
  dense_features: Sequence[int] = (128,)
  dense_dropout: float = 0.5
  num_classes: int = 10
  activation: Activation = "relu"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"CNN expects (batch, height, width, channels) input, got shape {x.shape}")
    if self.pool not in ("max", "avg"):
      raise ValueError(f"CNN pool must be 'max' or 'avg', got {self.pool!r}")
    if self.padding not in ("VALID", "SAME"):
      raise ValueError(f"CNN padding must be 'VALID' or 'SAME', got {self.padding!r}")
    act = activations.get(self.activation)
    n = len(self.conv_features)
    for i, channels in enumerate(self.conv_features):
      x = act(nn.Conv(channels, (self.kernel_size, self.kernel_size), padding=self.padding)(x))
      if (i + 1) % self.pool_every == 0 or i == n - 1:
        x = pool2d(x, self.pool_size, self.pool)
        if self.conv_dropout > 0:
          x = Dropout(self.conv_dropout, deterministic=not train)(x)
    x = _flatten(x)
    for width in self.dense_features:
      x = act(nn.Dense(width)(x))
      if self.dense_dropout > 0:
        x = Dropout(self.dense_dropout, deterministic=not train)(x)
    return _logits(nn.Dense(self.num_classes)(x))


class ResidualBlock(nn.Module):
  """Two 3x3 convolutions with BatchNorm and a skip connection (He et al. 2016, v1).

  ``(batch, h, w, c) -> (batch, h / stride, w / stride, features)``; the skip is a 1x1
  convolution with BatchNorm when the shape changes.

  >>> import jax, jax.numpy as jnp
  >>> b = ResidualBlock(8, stride=2)
  >>> b.apply(b.init(jax.random.key(0), jnp.ones((1, 6, 6, 4))), jnp.ones((2, 6, 6, 4))).shape
  (2, 3, 3, 8)
  """

  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)
    s = (self.stride, self.stride)
    y = nn.relu(norm()(nn.Conv(self.features, (3, 3), s, padding="SAME", use_bias=False)(x)))
    y = norm()(nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False)(y))
    if x.shape[-1] != self.features or self.stride != 1:
      x = norm()(nn.Conv(self.features, (1, 1), s, use_bias=False)(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """A small residual CNN with BatchNorm for 28x28 images (MNIST).

  A 3x3 convolution with BatchNorm at full resolution, then one stage of ``blocks``
  residual blocks per entry of ``stage_features``, each stage halving the resolution
  in its first block (28 -> 14 -> 7 -> 4 pixels), global average pooling and a dense
  layer. Its ``batch_stats`` live in
  ``TrainState.model_state``; train it with ``train=True`` (batch statistics) and
  evaluate with ``train=False`` (running averages), as :func:`jaxphys.fit` does.

  Attributes:
    stage_features: channels of each stage.
    blocks: residual blocks per stage.
    dropout: dropout rate on the pooled features before the dense layer (0: none).
    num_classes: output logits (1 gives ``(batch,)`` binary logits).

  ``(batch, height, width, channels) -> (batch, num_classes)`` logits.

  >>> import jax, jax.numpy as jnp
  >>> v = ResNet().init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))
  >>> sorted(v), ResNet().apply(v, jnp.ones((2, 28, 28, 1))).shape
  (['batch_stats', 'params'], (2, 10))
  """

  stage_features: Sequence[int] = (32, 64, 128)
  blocks: int = 1
  dropout: float = 0.0
  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"ResNet expects (batch, height, width, channels) input, got shape {x.shape}")
    x = nn.Conv(self.stage_features[0], (3, 3), padding="SAME", use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    for features in self.stage_features:
      for j in range(self.blocks):
        x = ResidualBlock(features, stride=2 if j == 0 else 1)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    if self.dropout > 0:
      x = Dropout(self.dropout, deterministic=not train)(x)
    return _logits(nn.Dense(self.num_classes)(x))
