"""Input checks run by fit and evaluate before anything compiles: one-line ValueErrors."""

from __future__ import annotations

from typing import Callable, Optional

import flax
import jax
import numpy as np
import optax

from jaxphys import losses
from jaxphys.train._step import variables

_BINARY = (losses.binary_cross_entropy, optax.sigmoid_binary_cross_entropy)
_MULTI = (losses.softmax_cross_entropy, optax.softmax_cross_entropy,
          optax.softmax_cross_entropy_with_integer_labels)


def check_data(x, y, batch_size, what: str) -> int:
  """``len(x)`` after checking ``batch_size`` and that ``x``, ``y`` have the same length."""
  if batch_size is None or isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size <= 0:
    raise ValueError(f"{what}: batch_size must be a positive integer, got {batch_size!r}")
  n = len(x)
  if len(y) != n:
    raise ValueError(f"{what}: x has {n} examples but y has {len(y)}")
  if n == 0:
    raise ValueError(f"{what}: no examples")
  return n


def output_shape(apply_fn: Callable, state, x) -> tuple:
  """The model's per-example output shape on ``x`` (one run of a stacked state)."""
  if jax.numpy.ndim(getattr(state, "step", 0)) == 1:
    state = jax.tree_util.tree_map(lambda a: a[0], state)
  try:
    out = jax.eval_shape(lambda v, xb: apply_fn(v, xb, train=False), variables(state), jax.numpy.asarray(x[:1]))
  except flax.errors.ScopeParamShapeError as e:  # the parameters were made for other inputs
    first = str(e).strip().splitlines()[0][:200]
    raise ValueError(f"x has per-example shape {tuple(np.shape(x)[1:])}, but the state's parameters "
                     f"were initialised for inputs of another shape ({first})") from e
  return tuple(out.shape[1:])


def _name(loss_fn) -> str:
  return getattr(loss_fn, "__name__", repr(loss_fn))


def check_labels(what: str, y, out: tuple, loss_fn: Optional[Callable]) -> None:
  """Raises a one-line ValueError when labels ``y`` do not fit a model whose per-example
  output shape is ``out`` under ``loss_fn`` (classification losses of jaxphys and optax
  are recognised; for other losses only the shapes are checked)."""
  y = np.asarray(y)
  binary, multi = loss_fn in _BINARY, loss_fn in _MULTI
  if len(out) > 1:
    return
  if y.ndim not in (1, 2):
    raise ValueError(f"{what}: labels must have shape (n,) or (n, C), got {y.shape}")
  if out in ((), (1,)):
    if multi:
      raise ValueError(f"{what}: the model has one output unit but {_name(loss_fn)} is a multi-class "
                       "loss; give the model C >= 2 outputs or use binary_cross_entropy")
    if y.ndim == 2:
      raise ValueError(f"{what}: labels have shape {y.shape} but the model gives one logit per "
                       f"example; give labels of shape ({len(y)},)")
    if binary:
      _check_binary(what, y)
    return
  classes = out[0]
  if binary and y.shape[1:] != out:
    raise ValueError(f"{what}: labels have shape {y.shape} but the model gives {classes} logits per "
                     f"example and {_name(loss_fn)} needs labels shaped like them")
  if y.ndim == 2 and y.shape[1] != classes:
    raise ValueError(f"{what}: labels have shape {y.shape} but the model gives {classes} logits; "
                     f"give integer classes of shape ({len(y)},) or one-hot rows of width {classes}")
  if binary:
    _check_binary(what, y)
  elif multi and y.ndim == 1:
    _check_classes(what, y, classes)
  elif multi:
    if y.min() < 0 or y.max() > 1 or not np.allclose(y.sum(1), 1, atol=1e-3):
      raise ValueError(f"{what}: one-hot labels must be rows of probabilities in [0, 1] summing to 1")


def _check_binary(what: str, y: np.ndarray) -> None:
  if np.issubdtype(y.dtype, np.floating):
    if not (np.all(y >= 0) and np.all(y <= 1)):
      raise ValueError(f"{what}: binary labels must lie in [0, 1] (0/1 classes or soft targets), "
                       f"got values from {y.min():g} to {y.max():g}")
  else:
    bad = np.setdiff1d(np.unique(y), [0, 1])
    if bad.size:
      raise ValueError(f"{what}: binary labels must be 0 or 1, got {bad[:5].tolist()}")


def _check_classes(what: str, y: np.ndarray, classes: int) -> None:
  if not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
    raise ValueError(f"{what}: labels of dtype {y.dtype} for a classification loss; give integer "
                     f"class indices in [0, {classes}) (e.g. y.astype(int))")
  lo, hi = int(y.min()), int(y.max())
  if lo < 0 or hi >= classes:
    raise ValueError(f"{what}: class labels must lie in [0, {classes}) for a model with {classes} "
                     f"outputs, got values from {lo} to {hi}")


def example_weights(what: str, y, sample_weight, class_weight) -> Optional[np.ndarray]:
  """``(n,)`` float32 weights ``sample_weight * class_weight[class]``, or None (all 1)."""
  n = len(y)
  w = None
  if sample_weight is not None:
    w = np.asarray(sample_weight, np.float32)
    if w.shape != (n,):
      raise ValueError(f"{what}: sample_weight must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
      raise ValueError(f"{what}: sample_weight must be finite and >= 0, not all 0")
  if class_weight is not None:
    y = np.asarray(y)
    classes = np.argmax(y, 1) if y.ndim == 2 else np.rint(y).astype(np.int64)
    table = dict(class_weight) if hasattr(class_weight, "keys") else dict(enumerate(class_weight))
    missing = sorted(set(np.unique(classes).tolist()) - set(table))
    if missing:
      raise ValueError(f"{what}: class_weight has no weight for class(es) {missing[:5]}")
    lookup = np.zeros(int(classes.max()) + 1, np.float32)
    for c, v in table.items():
      if 0 <= int(c) < len(lookup):
        lookup[int(c)] = v
    per_example = lookup[classes]
    if not np.all(np.isfinite(per_example)) or np.any(per_example < 0):
      raise ValueError(f"{what}: class_weight values must be finite and >= 0")
    w = per_example if w is None else w * per_example
  return w
