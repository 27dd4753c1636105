"""ROC curve, its area and working points (private; see :mod:`jaxphys.metrics`).

Concrete inputs are ranked on the host with NumPy in their own dtype
(:func:`host_curve`); traced ones with XLA's sort (:func:`roc_points`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxphys import _metrics_inputs as _in

PosLabel = Union[int, float, str, None]  # the positive class: any label value; None: 1


class HostCurve(NamedTuple):
  """Cumulative counts at each distinct score, in decreasing order (NumPy)."""

  fps: np.ndarray  # weighted false positives selected by ``scores >= thr`` (int64 unweighted)
  tps: np.ndarray  # weighted true positives
  thr: np.ndarray  # the distinct scores, the input's dtype
  negatives: np.ndarray  # unweighted count of negatives selected (== fps unweighted)
  ends: np.ndarray  # index of each distinct score's last example in decreasing order


def _packable(scores: np.ndarray) -> bool:
  return scores.dtype.itemsize <= 4 and scores.dtype.kind in "fiu"


def _sort_key(scores: np.ndarray) -> np.ndarray:
  """An int64 key of at most 33 bits whose order is the scores' order (-0.0 == 0.0)."""
  if scores.dtype.kind == "f":
    bits = (scores.astype(np.float32) + np.float32(0)).view(np.int32).astype(np.int64)
    return np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
  return scores.astype(np.int64)


def _from_key(key: np.ndarray, dtype) -> np.ndarray:
  if np.dtype(dtype).kind == "f":
    return np.where(key < 0, key ^ 0x7FFFFFFF, key).astype(np.int32).view(np.float32).astype(dtype)
  return key.astype(dtype)


def _descending_order(scores: np.ndarray) -> np.ndarray:
  """scikit-learn's order: a stable sort by decreasing score (ties keep input order).

  Scores of at most 32 bits sort as int64 words ``key << 32 | (n - 1 - index)``, which
  NumPy sorts about twice as fast as it arg-sorts.
  """
  n = scores.shape[0]
  if _packable(scores) and scores.dtype != np.uint32 and n < 2**32:
    words = np.sort((_sort_key(scores) << 32) | np.arange(n - 1, -1, -1, dtype=np.int64))[::-1]
    return (n - 1) - (words & 0xFFFFFFFF)
  return n - 1 - np.argsort(scores[::-1], kind="stable")[::-1]


def host_curve(pos: np.ndarray, scores: np.ndarray, w: Optional[np.ndarray],
               drop_zero: bool = True) -> HostCurve:
  """Counts at each distinct threshold, as ``sklearn.metrics._ranking`` computes them.

  Zero-weight examples are dropped (they are not thresholds), as scikit-learn does.
  Without weights the counts are exact integers: scores of at most 32 bits are sorted
  as one array of int64 words (the score's order-preserving bits, then the label),
  64-bit scores as two sorted classes merged (NumPy sorts values much faster than it
  arg-sorts). With weights the examples are summed in scikit-learn's order, so the
  sums round as scikit-learn's, bit for bit.
  """
  if w is not None and drop_zero:
    keep = w != 0
    if not keep.all():
      pos, scores, w = pos[keep], scores[keep], w[keep]
  n = scores.shape[0]
  if n == 0:
    _in._fail("sample_weight", "every weight is zero")
  if w is None and _packable(scores):
    words = np.sort((_sort_key(scores) << 1) | pos)[::-1]
    y, key = (words & 1).astype(bool), words >> 1
    ends = np.flatnonzero(np.r_[key[1:] != key[:-1], True])
    tps = np.cumsum(y, dtype=np.int64)[ends]
    fps = ends + 1 - tps
    return HostCurve(fps, tps, _from_key(key[ends], scores.dtype), fps, ends)
  if w is None:
    positives = np.sort(scores[pos])
    s = np.sort(np.concatenate([positives, np.sort(scores[~pos])]), kind="stable")[::-1]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), n - 1]
    tps = positives.shape[0] - np.searchsorted(positives, s[ends], "left").astype(np.int64)
    fps = ends + 1 - tps
    return HostCurve(fps, tps, s[ends], fps, ends)
  order = _descending_order(scores)
  s, y, ws = scores[order], pos[order], w[order]
  ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), n - 1]
  negatives = ends + 1 - np.cumsum(y, dtype=np.int64)[ends]
  yf = y.astype(np.float64)
  tps = np.cumsum(yf * ws)[ends]
  fps = np.cumsum((1 - yf) * ws)[ends]
  return HostCurve(fps, tps, s[ends], negatives, ends)


def host_binary(labels, scores, sample_weight, pos_label):
  """Checked concrete binary inputs: ``(pos, scores, weights)``."""
  _in.check_shapes(labels, scores, sample_weight, binary=True)
  s = _in.host_scores(scores)
  return _in.host_binary_labels(labels, pos_label), s, _in.host_weights(sample_weight)


def host_rates(curve: HostCurve, what: str):
  """``(fpr, tpr)`` float64 along a host curve; a class with no weight is an error."""
  if curve.tps.size == 0 or curve.tps[-1] <= 0:
    _in._fail("labels", f"no positive examples (or no positive weight): {what} is undefined")
  if curve.fps[-1] <= 0:
    _in._fail("labels", f"no negative examples (or no negative weight): {what} is undefined")
  return curve.fps / curve.fps[-1], curve.tps / curve.tps[-1]


# --- traced (jit) ---------------------------------------------------------------------

def _points(pos, scores, w):
  """The traced ROC at every example: ``(fps, tps, thr, last, negatives)``, each ``(n,)``."""
  n = scores.shape[0]
  if scores.dtype == jnp.bool_:
    scores = scores.astype(jnp.uint8)
  # Ascending, then reversed: negating would wrap unsigned scores.
  ascending = jax.lax.sort((scores, pos.astype(jnp.int32), jnp.ones(n, jnp.int32) if w is None else w),
                           num_keys=1)
  thr, y, ws = (a[::-1] for a in ascending)
  last = jnp.concatenate([thr[1:] != thr[:-1], jnp.ones(1, bool)])
  # Index of the last element of each example's tie group: a reverse running minimum.
  end = jax.lax.cummin(jnp.where(last, jnp.arange(n), n), reverse=True)
  tp_count = jnp.cumsum(y)[end]
  negatives = (end + 1 - tp_count).astype(jnp.int32)
  if w is None:
    return negatives, tp_count.astype(jnp.int32), thr, last, negatives
  tps = jnp.cumsum(y * ws)[end]
  fps = jnp.cumsum((1 - y) * ws)[end]
  negatives = jnp.cumsum((1 - y) * (ws != 0))[end]  # zero weights are no examples (as eagerly)
  return fps, tps, thr, last, negatives


def _traced_binary(labels, scores, sample_weight, pos_label):
  y, s = jnp.asarray(labels), jnp.asarray(scores).reshape(-1)
  y = jnp.argmax(y, -1) if y.ndim == 2 and y.shape[1] == 2 else y.reshape(-1)
  return y == (1 if pos_label is None else pos_label), s, _in.traced_weights(sample_weight)


def roc_points(labels: jax.Array, scores: jax.Array, *, sample_weight: Optional[jax.Array] = None,
               pos_label: PosLabel = None) -> tuple:
  """The ROC curve at every example: fixed size and jit-able (binary).

  Sorts by decreasing score; point ``i`` selects every example scoring at least the
  ``i``-th highest score, so tied scores are selected together (all examples of a tie
  group carry the counts of the whole group).

  Args:
    labels: ``(n,)`` binary labels (0/1 or -1/1, or two values with ``pos_label``).
    scores: ``(n,)`` (or ``(n, 1)``) real scores, higher = more signal-like.
    sample_weight: ``(n,)`` weights: the counts become sums of weights.
    pos_label: the positive class (default 1).

  Returns:
    ``(fps, tps, thresholds, last)``, each ``(n,)``: false- and true-positive counts
    (int32 under jit, int64 eagerly; the weights' float dtype with weights), the
    threshold of each point (decreasing, the scores' dtype) and a bool mask of the last
    point of each tie group (the distinct thresholds). Eagerly the values are checked
    and the counts computed on the host; under jit only shapes.

  >>> fps, tps, thr, last = roc_points([0, 1, 1], [0.2, 0.9, 0.2])
  >>> fps.tolist(), tps.tolist(), last.tolist()
  ([0, 1, 1], [1, 2, 2], [True, False, True])
  """
  if _in.is_traced(labels, scores, sample_weight):
    _in.check_shapes(labels, scores, sample_weight, binary=True)
    return _points(*_traced_binary(labels, scores, sample_weight, pos_label))[:4]
  pos, s, w = host_binary(labels, scores, sample_weight, pos_label)
  c = host_curve(pos, s, w, drop_zero=False)
  sizes = np.diff(np.r_[-1, c.ends])
  last = np.zeros(s.shape[0], bool)
  last[c.ends] = True
  return np.repeat(c.fps, sizes), np.repeat(c.tps, sizes), np.repeat(c.thr, sizes), last


def _threshold_dtype(dtype) -> np.dtype:
  """Thresholds keep a float dtype; integer scores' thresholds are float64 (to hold inf)."""
  return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)


def _drop_collinear(c: HostCurve) -> HostCurve:
  """scikit-learn's ``drop_intermediate``: drop points collinear with both neighbours."""
  if c.fps.shape[0] <= 2:
    return c
  keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(c.fps, 2), np.diff(c.tps, 2)), True])
  return HostCurve(*(a[keep] for a in c))


def roc_curve(labels: jax.Array, scores: jax.Array, drop_intermediate: bool = True, *,
              sample_weight: Optional[jax.Array] = None, pos_label: PosLabel = None) -> tuple:
  """ROC curve ``(fpr, tpr, thresholds)`` as NumPy arrays, as ``sklearn.metrics.roc_curve``.

  The first point is ``(0, 0)`` at threshold ``+inf``; then one point per distinct
  score in decreasing order (ties handled exactly); ``fpr[i]``, ``tpr[i]`` are the
  (weighted) rates of ``scores >= thresholds[i]``, exactly. With
  ``drop_intermediate`` points collinear with both neighbours are dropped, as
  scikit-learn does. Zero-weight examples are ignored. Binary only: for class ``c`` of
  a multi-class problem pass ``(labels == c, scores[:, c])``.

  Args:
    labels: ``(n,)`` binary labels (0/1 or -1/1, or two values with ``pos_label``).
    scores: ``(n,)`` or ``(n, 1)`` finite real scores.
    drop_intermediate: drop collinear points.
    sample_weight: ``(n,)`` per-example weights.
    pos_label: the positive class (default 1).

  Returns:
    ``fpr``, ``tpr`` (float64, in [0, 1]) and ``thresholds`` (the scores' float dtype;
    float64 for integer scores), each of length ``k + 1`` for ``k`` kept points.

  Raises ValueError for invalid inputs and when a class is missing (scikit-learn
  warns and returns NaN rates). Eager only: the length depends on the data (under
  jit use :func:`roc_points`).

  >>> fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
  >>> fpr.tolist(), tpr.tolist(), thr.tolist()
  ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0], [inf, 0.8, 0.4, 0.35, 0.1])
  """
  if _in.is_traced(labels, scores, sample_weight):
    _in._fail("scores", "roc_curve's length depends on the values; under jit use roc_points")
  c = host_curve(*host_binary(labels, scores, sample_weight, pos_label))
  if drop_intermediate:
    c = _drop_collinear(c)
  fpr, tpr = host_rates(c, "the ROC curve")
  thr = np.r_[np.inf, c.thr].astype(_threshold_dtype(c.thr.dtype))
  return np.r_[0.0, fpr], np.r_[0.0, tpr], thr


def _host_auc(pos, s, w) -> np.float64:
  fpr, tpr = host_rates(_drop_collinear(host_curve(pos, s, w)), "the ROC AUC")
  return np.float64(np.trapezoid(np.r_[0.0, tpr], np.r_[0.0, fpr]))


def _traced_auc(pos, s, w):
  fps, tps, _, _, _ = _points(pos, s, w)
  dtype = jnp.promote_types(jnp.float32, jnp.result_type(float, fps.dtype))
  fps, tps = fps.astype(dtype), tps.astype(dtype)
  zero = jnp.zeros(1, dtype)
  fps_prev, tps_prev = jnp.concatenate([zero, fps[:-1]]), jnp.concatenate([zero, tps[:-1]])
  # Trapezoids between consecutive points; points inside a tie group coincide with the
  # group's last point and add zero width. Summed in blocks to bound the rounding.
  twice_area = (fps - fps_prev) * (tps + tps_prev)
  pad = (-twice_area.shape[0]) % 1024
  total = jnp.sum(jnp.sum(jnp.pad(twice_area, (0, pad)).reshape(-1, 1024), axis=1))
  auc = total / (2 * tps[-1] * fps[-1])
  return jnp.where((tps[-1] > 0) & (fps[-1] > 0), auc, jnp.nan)


def roc_auc(labels: jax.Array, scores: jax.Array, average: Optional[str] = "macro", *,
            sample_weight: Optional[jax.Array] = None, pos_label: PosLabel = None) -> jax.Array:
  """Area under the ROC curve: the probability that a random positive outscores a
  random negative, ties counting one half (weighted by ``sample_weight``).

  Binary ``(n,)`` scores: as ``sklearn.metrics.roc_auc_score`` (``average`` unused).
  ``(n, C)`` scores: one-vs-rest AUCs, as ``roc_auc_score(..., multi_class="ovr",
  labels=range(C))``, for scores of any kind (scikit-learn insists on probabilities
  summing to 1; the one-vs-rest AUC of class ``c`` only ranks column ``c``), with
  ``average``: None (``(C,)``), ``"macro"`` (plain mean), ``"weighted"`` (by class
  support; absent classes get weight 0, as scikit-learn) or ``"micro"`` (one AUC of
  the raveled one-hot labels and scores).

  Args:
    labels: ``(n,)`` binary labels (0/1 or -1/1, or two values with ``pos_label``), or
      class indices in ``[0, C)`` (or one-hot rows) for ``(n, C)`` scores.
    scores: ``(n,)``/``(n, 1)`` or ``(n, C)`` finite real scores.
    sample_weight: ``(n,)`` per-example weights.

  Eagerly everything is checked and a class without positives or negatives is a
  ValueError (scikit-learn returns NaN with a warning) unless ``average="weighted"``
  skips it; computed in float64 on the host. Under jit only shapes are checked and an
  undefined AUC is NaN.

  >>> float(roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]))
  0.75
  """
  _in.check_average(average, ("micro", "macro", "weighted", None))
  binary = _in.check_shapes(labels, scores, sample_weight)
  if _in.is_traced(labels, scores, sample_weight):
    return _traced_roc_auc(labels, scores, sample_weight, pos_label, average, binary)
  if binary:
    return _host_auc(*host_binary(labels, scores, sample_weight, pos_label))
  s, w = _in.host_scores(scores), _in.host_weights(sample_weight)
  y = _in.host_class_labels(labels, s.shape[1])
  onehot = y[:, None] == np.arange(s.shape[1])
  if average == "micro":
    return _host_auc(onehot.ravel(), s.ravel(), None if w is None else np.repeat(w, s.shape[1]))
  support = onehot.sum(0) if w is None else (onehot * w[:, None]).sum(0)
  per_class = np.zeros(s.shape[1])
  for c in range(s.shape[1]):
    if average != "weighted" or support[c] != 0:
      try:
        per_class[c] = _host_auc(onehot[:, c], s[:, c], w)
      except ValueError as e:
        _in._fail("labels", f"class {c}: {str(e).split(': ', 1)[1]}")
  if average is None:
    return per_class
  if average == "macro":
    return np.float64(per_class.mean())
  return np.float64(np.sum(per_class * support) / np.sum(support))


def _traced_roc_auc(labels, scores, sample_weight, pos_label, average, binary):
  if binary:
    return _traced_auc(*_traced_binary(labels, scores, sample_weight, pos_label))
  s, w = jnp.asarray(scores), _in.traced_weights(sample_weight)
  onehot = jnp.asarray(labels)
  if onehot.ndim == 1 or onehot.shape[1] == 1:
    onehot = onehot.reshape(-1)[:, None] == jnp.arange(s.shape[1])
  onehot = onehot.astype(bool)
  if average == "micro":
    return _traced_auc(onehot.ravel(), s.ravel(), None if w is None else jnp.repeat(w, s.shape[1]))
  per_class = jax.vmap(lambda p, x: _traced_auc(p, x, w), in_axes=(1, 1))(onehot, s)
  if average is None:
    return per_class
  if average == "macro":
    return jnp.mean(per_class)
  support = jnp.sum(onehot if w is None else onehot * w[:, None], axis=0)
  return jnp.sum(jnp.where(support != 0, per_class, 0) * support) / jnp.sum(support)


class WorkingPoint(NamedTuple):
  """A chosen cut: select ``scores >= threshold``; ``tpr`` and ``fpr`` achieved there."""

  threshold: jax.Array
  tpr: jax.Array
  fpr: jax.Array


def working_point(labels: jax.Array, scores: jax.Array, *, target_tpr: Optional[float] = None,
                  target_fpr: Optional[float] = None, sample_weight: Optional[jax.Array] = None,
                  pos_label: PosLabel = None) -> WorkingPoint:
  """Chooses the threshold for a target signal efficiency or background efficiency.

  With ``target_tpr`` it returns the highest threshold whose TPR reaches the target
  (the purest selection that keeps that much signal). With ``target_fpr`` it returns
  the lowest threshold whose FPR stays at or below the target (the most signal a
  background budget allows). The candidates are the ROC curve's points, including
  ``+inf`` (select nothing: TPR = FPR = 0), so every target in [0, 1] is reachable.
  Rates within their own rounding of the target count as reaching it (weighted sums:
  about ``n`` ulps; under jit a few float32 ulps), so a target a cut reaches exactly,
  such as 0.3 with ten equal weights, picks that cut.

  Args:
    labels: ``(n,)`` binary labels (0/1 or -1/1, or two values with ``pos_label``).
    scores: ``(n,)`` or ``(n, 1)`` finite real scores.
    target_tpr, target_fpr: exactly one, in [0, 1].
    sample_weight: ``(n,)`` per-example weights (weighted efficiencies).
    pos_label: the positive class (default 1).

  Returns:
    :class:`WorkingPoint` of scalars. Eagerly (NumPy, float64 rates) the threshold has
    the scores' dtype, so ``scores >= threshold`` reproduces ``tpr`` and ``fpr``
    exactly; for integer scores the select-nothing cut is a float64 ``inf``.
    Eagerly everything is checked (a missing class is a ValueError); under jit only
    shapes and the targets' presence, and the threshold is a float (float32 without
    ``jax_enable_x64``: integer scores above 2**24 are then rounded).

  >>> wp = working_point([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], target_tpr=1.0)
  >>> float(wp.threshold), float(wp.tpr), float(wp.fpr)
  (0.35, 1.0, 0.5)
  """
  if (target_tpr is None) == (target_fpr is None):
    _in._fail("target_tpr", "working_point needs exactly one of target_tpr or target_fpr")
  name, target = ("target_tpr", target_tpr) if target_fpr is None else ("target_fpr", target_fpr)
  if not _in.is_traced(target):
    target = _in.check_fraction(name, target)
  if _in.is_traced(labels, scores, sample_weight, target):
    _in.check_shapes(labels, scores, sample_weight, binary=True)
    return _traced_working_point(*_traced_binary(labels, scores, sample_weight, pos_label),
                                 name, target)
  pos, s, w = host_binary(labels, scores, sample_weight, pos_label)
  c = host_curve(pos, s, w)
  fpr, tpr = host_rates(c, "a working point")
  fpr, tpr = np.r_[0.0, fpr], np.r_[0.0, tpr]
  # Weighted rates carry their cumulative sums' rounding (up to ~n ulps: three of ten
  # weights 0.1 give 0.30000000000000004); a target a cut reaches exactly must be reached.
  slack = 0.0 if w is None else c.ends[-1] * np.finfo(np.float64).eps
  if name == "target_tpr":
    i = int(np.argmax(tpr >= target * (1 - slack)))
  else:
    i = int(np.flatnonzero(fpr <= target * (1 + slack))[-1])
  thr = c.thr[i - 1] if i > 0 else _threshold_dtype(c.thr.dtype).type(np.inf)
  return WorkingPoint(thr, tpr[i], fpr[i])


def _traced_working_point(pos, s, w, name, target):
  fps, tps, thr, _, _ = _points(pos, s, w)
  dtype = jnp.promote_types(jnp.float32, jnp.result_type(float, fps.dtype))
  zero = jnp.zeros(1, dtype)
  tpr = jnp.concatenate([zero, tps / tps[-1].astype(dtype)])
  fpr = jnp.concatenate([zero, fps / fps[-1].astype(dtype)])
  thr = jnp.concatenate([jnp.full(1, jnp.inf, jnp.result_type(float, thr.dtype)), thr])
  slack = 8 * jnp.finfo(dtype).eps  # XLA divides by a reciprocal: 9 / 10 > 0.9 in float32
  if name == "target_tpr":
    i = jnp.argmax(tpr >= target * (1 - slack))  # first point (highest threshold) reaching it
  else:
    ok = fpr <= target * (1 + slack)
    i = ok.shape[0] - 1 - jnp.argmax(ok[::-1])  # last point within the budget
  return WorkingPoint(thr[i], tpr[i], fpr[i])
