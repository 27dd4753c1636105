"""Input checks shared by :mod:`jaxphys.metrics` (private).

Two regimes. Concrete inputs (an eager call) are converted to NumPy arrays on the host
and checked completely: shapes, lengths, emptiness, finiteness, label values. Traced
inputs (inside ``jax.jit``/``vmap``) can only be checked by shape; their values are
taken as they come. Every failure is a one-line ``ValueError`` naming the argument.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

AVERAGES = ("binary", "micro", "macro", "weighted", None)


def is_traced(*xs) -> bool:
  """Whether any argument is a JAX tracer (the call is being jitted or vmapped)."""
  return any(isinstance(x, jax.core.Tracer) for x in xs)


def _fail(name: str, problem: str):
  raise ValueError(f"{name}: {problem}")


def _column(name: str, shape: tuple, allow_2d: bool) -> int:
  """Checks a ``(n,)`` / ``(n, 1)`` (/ ``(n, C)``) shape; returns ``n``."""
  if len(shape) == 1 or (len(shape) == 2 and (allow_2d or shape[1] == 1)):
    return shape[0]
  want = "(n,), (n, 1) or (n, C)" if allow_2d else "(n,) or (n, 1)"
  _fail(name, f"expected shape {want}, got {tuple(shape)}")


def check_shapes(labels, scores, sample_weight=None, *, binary: Optional[bool] = None,
                 scores_name: str = "scores") -> bool:
  """Shape checks valid under jit; returns whether the problem is binary (1-D scores).

  ``binary=True`` requires ``(n,)``/``(n, 1)`` scores; ``(n, C)`` scores with C >= 2
  are a multi-class problem. Labels are ``(n,)``/``(n, 1)`` or one-hot ``(n, C)``.
  """
  s_shape, y_shape = np.shape(scores), np.shape(labels)
  n = _column(scores_name, s_shape, allow_2d=binary is not True)
  is_binary = len(s_shape) == 1 or s_shape[1] == 1
  _column("labels", y_shape, allow_2d=True)
  if y_shape[0] != n:
    _fail("labels", f"length {y_shape[0]} does not match {scores_name}' length {n}")
  if len(y_shape) == 2 and y_shape[1] > 1:
    c = 2 if is_binary else s_shape[1]
    if y_shape[1] != c:
      _fail("labels", f"one-hot rows of {y_shape[1]} classes for {scores_name} of shape {tuple(s_shape)}")
  if sample_weight is not None:
    w_shape = np.shape(sample_weight)
    if _column("sample_weight", w_shape, allow_2d=False) != n:
      _fail("sample_weight", f"length {w_shape[0]} does not match {scores_name}' length {n}")
  if n == 0:
    _fail(scores_name, "empty input (no examples)")
  return is_binary


# --- eager (host, NumPy) --------------------------------------------------------------

def host_array(x) -> np.ndarray:
  """A concrete input as a NumPy array; ``ml_dtypes`` floats (bfloat16, float8) as float32.

  NumPy cannot sort or sum those, and float32 holds each of their values exactly.
  """
  x = np.asarray(x)
  if x.dtype.kind == "V" and jnp.issubdtype(x.dtype, jnp.floating):
    return x.astype(np.float32)
  return x


def host_threshold(threshold):
  """A concrete binary cut for ``scores >= threshold`` with NumPy's rules: a Python
  number as it is (compared in the scores' dtype), anything else as a NumPy scalar (a
  JAX scalar would make the comparison a float32 JAX one)."""
  if isinstance(threshold, (int, float)):
    return threshold
  t = host_array(threshold)
  if t.ndim != 0:
    _fail("threshold", f"expected a scalar, got shape {t.shape}")
  if t.dtype.kind not in "fiub":
    _fail("threshold", f"expected a real number, got {threshold!r}")
  return t[()]


def check_threshold_shape(threshold) -> None:
  """Under jit: the cut must be a scalar (an array would broadcast over the examples)."""
  if np.ndim(threshold) != 0:
    _fail("threshold", f"expected a scalar, got shape {np.shape(threshold)}")


def traced_weights(sample_weight) -> Optional[jax.Array]:
  """Traced ``(n,)`` weights in at least float32 (half-precision sums lose whole events)."""
  if sample_weight is None:
    return None
  w = jnp.asarray(sample_weight).reshape(-1)
  return w.astype(jnp.promote_types(jnp.float32, jnp.result_type(float, w.dtype)))


def host_scores(scores, name: str = "scores") -> np.ndarray:
  """Concrete scores as a NumPy array in their own dtype, ``(n, 1)`` -> ``(n,)``; finite.

  bfloat16 and other ``ml_dtypes`` floats become float32 (exactly).
  """
  s = host_array(scores)
  if s.ndim == 2 and s.shape[1] == 1:
    s = s[:, 0]
  if s.dtype.kind == "b":
    s = s.astype(np.uint8)
  if s.dtype.kind not in "fiu":
    _fail(name, f"expected real numbers, got dtype {s.dtype}")
  if s.dtype.kind == "f":
    bad = np.count_nonzero(~np.isfinite(s))
    if bad:
      _fail(name, f"{bad} value(s) are NaN or infinite")
  return s


def _integer_valued(name: str, y: np.ndarray) -> np.ndarray:
  if y.dtype.kind == "b":
    return y.astype(np.int64)
  if y.dtype.kind == "f":
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
      _fail(name, "expected integer class labels, got non-integer or non-finite values")
    return y.astype(np.int64)
  if y.dtype.kind not in "iu":
    _fail(name, f"expected integer class labels, got dtype {y.dtype}")
  return y


def _one_hot_rows(y: np.ndarray) -> np.ndarray:
  if not (np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)):
    _fail("labels", f"(n, {y.shape[1]}) labels must be one-hot rows (a single 1 per row)")
  return np.argmax(y, axis=1)


def host_binary_labels(labels, pos_label=None) -> np.ndarray:
  """Concrete binary labels -> bool ``(n,)``, True for the positive class.

  Without ``pos_label`` the labels must be 0/1 (or bool) or -1/1, and 1 is positive
  (scikit-learn's rule). With ``pos_label`` they may be any two values.
  """
  y = host_array(labels)
  if y.ndim == 2 and y.shape[1] == 2:
    y = _one_hot_rows(y)
  elif y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if pos_label is None:
    pos = y == 1
    if not (np.all(pos | (y == 0)) or np.all(pos | (y == -1))):
      found = np.unique(y)[:5].tolist()
      _fail("labels", f"binary labels must be 0/1 or -1/1, got values {found}; "
                      "pass pos_label= to name the positive class")
    return pos
  pos = y == pos_label
  rest = y[~pos]
  if rest.size and np.any(rest != rest[0]):
    found = np.unique(y)[:5].tolist()
    _fail("labels", f"more than two classes for a binary metric (values {found}, pos_label={pos_label!r})")
  return pos


def host_class_labels(labels, num_classes: int) -> np.ndarray:
  """Concrete multi-class labels -> intp ``(n,)`` in ``[0, num_classes)``."""
  y = host_array(labels)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  elif y.ndim == 2:
    y = _one_hot_rows(y)
  y = _integer_valued("labels", y)
  lo, hi = y.min(), y.max()
  if lo < 0:
    _fail("labels", f"negative class label {lo}")
  if hi >= num_classes:
    _fail("labels", f"class {hi} has no score column (scores have {num_classes} columns)")
  return y.astype(np.intp)


def host_weights(sample_weight) -> Optional[np.ndarray]:
  """Concrete ``(n,)`` per-example weights as float64 (finite), or None."""
  if sample_weight is None:
    return None
  w = host_array(sample_weight)
  if w.ndim == 2 and w.shape[1] == 1:
    w = w[:, 0]
  if w.dtype.kind not in "fiub":
    _fail("sample_weight", f"expected real numbers, got dtype {w.dtype}")
  w = w.astype(np.float64)
  if not np.all(np.isfinite(w)):
    _fail("sample_weight", "contains NaN or infinite values")
  return w


def check_average(average, allowed=AVERAGES) -> None:
  if average not in allowed:
    _fail("average", f"must be one of {allowed}, got {average!r}")


def check_fraction(name: str, value) -> float:
  """A target rate: a number in [0, 1]."""
  try:
    v = float(value)
  except (TypeError, ValueError):
    _fail(name, f"expected a number in [0, 1], got {value!r}")
  if not 0.0 <= v <= 1.0:
    _fail(name, f"must be in [0, 1], got {value!r}")
  return v
