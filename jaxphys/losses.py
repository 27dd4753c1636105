"""Per-example losses derived from maximum likelihood.

Every loss takes ``(logits, labels)`` and returns one value per example, shape
``(batch,)``, like optax. The trainer averages them; a new loss is a pure function
with the same signature added here, without touching the trainer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["binary_cross_entropy", "softmax_cross_entropy", "one_hot"]


def binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  r"""Binary cross-entropy of a logistic (Bernoulli) model, from its logit.

  The model says :math:`p(y=1 \mid x) = \sigma(z)` with logit :math:`z`. The likelihood
  of independent labels :math:`y_i \in \{0, 1\}` is
  :math:`\prod_i \sigma(z_i)^{y_i} (1 - \sigma(z_i))^{1 - y_i}`; its negative log,
  per example, is

  .. math:: \ell(z, y) = -y \log\sigma(z) - (1 - y)\log(1 - \sigma(z))
                       = \mathrm{softplus}(z) - y z,

  evaluated as ``optax.sigmoid_binary_cross_entropy`` does, from
  :math:`\log\sigma(z)` and :math:`\log\sigma(-z)`: correct to rounding at any logit
  in any precision (no cancellation for ``y = 1`` at large :math:`z`), with the
  gradient :math:`\sigma(z) - y` likewise. Maximising the likelihood is minimising the
  mean of :math:`\ell`.

  Args:
    logits: ``(batch,)`` (or any shape) real logits :math:`z`, not probabilities.
    labels: same shape as ``logits`` (a ``(batch, 1)`` column and ``(batch,)`` are the
      same), values in ``{0, 1}`` (soft labels in ``[0, 1]`` also work). Shapes are
      checked (also under jit); values are not.

  Returns:
    Losses in nats, the shape of ``logits``.

  >>> binary_cross_entropy(jnp.array([0.0, 20.0, -20.0]), jnp.array([1, 1, 1]))
  Array([6.9314718e-01, 2.0611537e-09, 2.0000000e+01], dtype=float32)
  """
  logits = jnp.asarray(logits)
  labels = _same_shape(jnp.asarray(labels), logits.shape)
  return optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype))


def _same_shape(labels: jax.Array, shape: tuple) -> jax.Array:
  """``labels`` reshaped to ``shape`` when they differ only by a trailing axis of 1."""
  if labels.shape == shape:
    return labels
  squeeze = lambda s: s[:-1] if len(s) == 2 and s[-1] == 1 else s
  if squeeze(labels.shape) == squeeze(tuple(shape)):
    return labels.reshape(shape)
  raise ValueError(f"labels: shape {labels.shape} does not match logits' shape {tuple(shape)}")


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  r"""Cross-entropy of a softmax (categorical) model, from its logits.

  The model says :math:`p(k \mid x) = e^{z_k} / \sum_j e^{z_j}` for :math:`C` classes.
  With one-hot targets :math:`t_k` the negative log-likelihood of one example is

  .. math:: \ell(z, t) = -\sum_k t_k \log p(k \mid x)
                       = \log\sum_j e^{z_j} - \sum_k t_k z_k,

  computed with a stable log-sum-exp. For ``C = 2`` it equals
  :func:`binary_cross_entropy` of the logit difference :math:`z_1 - z_0`.

  Args:
    logits: ``(batch, C)`` real logits.
    labels: ``(batch,)`` integer class indices in ``[0, C)``, or ``(batch, C)`` one-hot
      (or any probability) rows.

  Shapes are checked (also under jit); eagerly, integer labels outside ``[0, C)`` are
  a ValueError too (under jit their loss is undefined).

  Returns:
    ``(batch,)`` losses in nats.

  >>> softmax_cross_entropy(jnp.array([[0.0, 0.0], [2.0, 0.0]]), jnp.array([1, 0]))
  Array([0.6931472 , 0.12692805], dtype=float32)
  """
  logits = jnp.asarray(logits)
  labels = jnp.asarray(labels)
  if logits.ndim == 0:
    raise ValueError("logits: expected shape (batch, C), got a scalar")
  if labels.shape not in (logits.shape, logits.shape[:-1]):
    raise ValueError(f"labels: shape {labels.shape} matches neither logits' {logits.shape} "
                     f"nor its batch shape {logits.shape[:-1]}")
  if labels.ndim < logits.ndim and not isinstance(labels, jax.core.Tracer) and labels.size:
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= logits.shape[-1]:
      raise ValueError(f"labels: integer class labels must be in [0, {logits.shape[-1]})")
  log_p = jax.nn.log_softmax(logits, axis=-1)
  if labels.ndim == logits.ndim:
    return -jnp.sum(labels.astype(log_p.dtype) * log_p, axis=-1)
  return -jnp.take_along_axis(log_p, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]


def one_hot(labels: jax.Array, num_classes: int, dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """One-hot rows: ``(batch,)`` integer labels -> ``(batch, num_classes)`` of 0/1.

  A label outside ``[0, num_classes)`` gives an all-zero row.

  >>> one_hot(jnp.array([0, 2]), 3)
  Array([[1., 0., 0.],
         [0., 0., 1.]], dtype=float32)
  """
  return jax.nn.one_hot(labels, num_classes, dtype=dtype)
