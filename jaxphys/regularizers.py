"""Parameter penalties: pure functions of a parameter pytree returning a scalar.

By default only weights are penalised: leaves with two or more dimensions (Dense and
Conv kernels). Biases and other 1-D leaves are excluded, as in scikit-learn, where
the intercept is never penalised. ``mask`` picks leaves explicitly: a pytree of bools
with the structure of ``params``, or a callable ``params -> such a pytree`` (the optax
convention). The trainer adds ``reg_strength * regularizer(params)`` to the mean loss,
so any penalty here composes with any loss.
"""

from __future__ import annotations

from typing import Any, Callable, Union

import jax
import jax.numpy as jnp

__all__ = ["weights_mask", "l1", "l2", "elastic_net"]

PyTree = Any
Mask = Union[PyTree, Callable[[PyTree], PyTree], None]


def weights_mask(params: PyTree) -> PyTree:
  """The default mask: ``True`` for leaves with ``ndim >= 2`` (kernels), else ``False``.

  >>> import jax.numpy as jnp
  >>> from jaxphys import regularizers
  >>> regularizers.weights_mask({"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)})
  {'bias': False, 'kernel': True}
  """
  return jax.tree_util.tree_map(lambda p: jnp.ndim(p) >= 2, params)


def _selected(params: PyTree, mask: Mask) -> list[jax.Array]:
  if mask is None:
    mask = weights_mask
  if callable(mask):
    mask = mask(params)
  leaves = jax.tree_util.tree_leaves(params)
  flags = jax.tree_util.tree_leaves(mask)
  if len(flags) != len(leaves):
    raise ValueError(f"mask has {len(flags)} leaves but params has {len(leaves)}")
  return [p for p, keep in zip(leaves, flags) if keep]


def _total(values: list[jax.Array]) -> jax.Array:
  return sum(values, jnp.zeros((), jnp.float32))


def l1(params: PyTree, mask: Mask = None) -> jax.Array:
  r"""Lasso penalty :math:`\sum_i |w_i|` over the selected leaves. Scalar.

  >>> import jax.numpy as jnp
  >>> from jaxphys import regularizers
  >>> params = {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([5.0])}
  >>> regularizers.l1(params)  # the bias is not penalised
  Array(3., dtype=float32)
  """
  return _total([jnp.sum(jnp.abs(p)) for p in _selected(params, mask)])


def l2(params: PyTree, mask: Mask = None) -> jax.Array:
  r"""Ridge penalty :math:`\tfrac12 \sum_i w_i^2` over the selected leaves. Scalar.

  The factor 1/2 makes the gradient :math:`w` (weight decay), and matches
  scikit-learn: ``LogisticRegression(C=C)`` on ``n`` examples minimises our
  ``mean(binary_cross_entropy) + reg_strength * l2`` with ``reg_strength = 1 / (C n)``.

  >>> import jax.numpy as jnp
  >>> from jaxphys import regularizers
  >>> params = {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([5.0])}
  >>> regularizers.l2(params)  # (1 + 4) / 2
  Array(2.5, dtype=float32)
  >>> regularizers.l2(params, mask={"kernel": True, "bias": True})
  Array(15., dtype=float32)
  """
  return _total([0.5 * jnp.sum(jnp.square(p)) for p in _selected(params, mask)])


def elastic_net(params: PyTree, l1_ratio: float = 0.5, mask: Mask = None) -> jax.Array:
  r"""Elastic net :math:`\rho \sum|w_i| + (1-\rho)\tfrac12\sum w_i^2`, :math:`\rho` = ``l1_ratio``.

  Same convention as scikit-learn's ``ElasticNet`` / ``penalty="elasticnet"``. Scalar.

  >>> import jax.numpy as jnp
  >>> from jaxphys import regularizers
  >>> regularizers.elastic_net({"kernel": jnp.array([[1.0, -2.0]])}, l1_ratio=0.5)  # 3/2 + 2.5/2
  Array(2.75, dtype=float32)
  """
  if isinstance(l1_ratio, (int, float)) and not 0.0 <= l1_ratio <= 1.0:
    raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio}")
  return l1_ratio * l1(params, mask) + (1.0 - l1_ratio) * l2(params, mask)
