"""Classifier metrics, the same functions for binary (SUSY) and multi-class (MNIST).

Conventions, shared by every function:

* ``labels``: ``(n,)`` integer classes (``{0, 1}`` for a binary problem), or
  ``(n, C)`` one-hot rows.
* ``scores``: ``(n,)`` for a binary problem, the score of class 1 (a probability, or
  a logit with ``threshold=0.0``); ``(n, C)`` for ``C`` classes, one column each
  (probabilities or logits). A binary prediction is ``scores >= threshold``; a
  multi-class one is the arg-max (``threshold`` is then unused).
* Multi-class rates are one-vs-rest, one per class (``average=None``, shape ``(C,)``)
  or averaged: ``"macro"`` (plain mean), ``"weighted"`` (by class support) or
  ``"micro"`` (pooled counts). Binary rates are scalars for class 1.
* A ratio whose denominator is zero (e.g. precision with no positive prediction) is
  0.0, as scikit-learn's default ``zero_division`` gives. A ROC AUC with a single
  class present is NaN, as scikit-learn returns (with a warning).

Everything is pure and jit-able except :func:`roc_curve`, whose output length depends
on the data (it compacts the fixed-size :func:`roc_points`); all of it equals
scikit-learn on the same inputs, ties included.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "predict_classes", "accuracy", "confusion_matrix", "tpr", "fpr", "precision",
    "recall", "f1", "roc_points", "roc_curve", "roc_auc", "WorkingPoint",
    "working_point", "asimov_significance", "Discovery", "discovery_significance",
]

_AVERAGES = (None, "macro", "weighted", "micro")


def _class_labels(labels: jax.Array) -> jax.Array:
  labels = jnp.asarray(labels)
  if labels.ndim == 2:
    labels = jnp.argmax(labels, axis=-1)
  return labels.astype(jnp.int32)


def predict_classes(scores: jax.Array, threshold: float = 0.5) -> jax.Array:
  """``(n,)`` binary scores -> ``scores >= threshold``; ``(n, C)`` -> arg-max. Int32 ``(n,)``."""
  scores = jnp.asarray(scores)
  if scores.ndim == 1:
    return (scores >= threshold).astype(jnp.int32)
  return jnp.argmax(scores, axis=-1).astype(jnp.int32)


def accuracy(labels: jax.Array, scores: jax.Array, threshold: float = 0.5) -> jax.Array:
  """Fraction of examples whose predicted class equals the label. Scalar in [0, 1]."""
  return jnp.mean(predict_classes(scores, threshold) == _class_labels(labels))


def confusion_matrix(labels: jax.Array, predictions: jax.Array, num_classes: int = 2) -> jax.Array:
  """``(num_classes, num_classes)`` int32 counts; row = true class, column = predicted.

  ``predictions`` are class indices (see :func:`predict_classes`), as in
  ``sklearn.metrics.confusion_matrix``. ``num_classes`` must be static under jit.
  """
  labels = _class_labels(labels)
  predictions = jnp.asarray(predictions).astype(jnp.int32)
  cm = jnp.zeros((num_classes, num_classes), jnp.int32)
  return cm.at[labels, predictions].add(1, mode="drop")


class _Counts(NamedTuple):
  tp: jax.Array
  fp: jax.Array
  fn: jax.Array
  tn: jax.Array


def _counts(labels, scores, threshold) -> _Counts:
  """True/false positives/negatives: scalars (binary) or ``(C,)`` one-vs-rest."""
  scores = jnp.asarray(scores)
  labels = _class_labels(labels)
  pred = predict_classes(scores, threshold)
  if scores.ndim == 1:
    pos, neg = labels == 1, labels != 1
    tp = jnp.sum(pos & (pred == 1))
    fp = jnp.sum(neg & (pred == 1))
    fn = jnp.sum(pos & (pred != 1))
    tn = jnp.sum(neg & (pred != 1))
    return _Counts(tp, fp, fn, tn)
  cm = confusion_matrix(labels, pred, scores.shape[-1])
  tp = jnp.diag(cm)
  fp = jnp.sum(cm, axis=0) - tp
  fn = jnp.sum(cm, axis=1) - tp
  tn = jnp.sum(cm) - tp - fp - fn
  return _Counts(tp, fp, fn, tn)


def _ratio(num, den):
  num = jnp.asarray(num, jnp.float32)
  den = jnp.asarray(den, jnp.float32)
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def _averaged(num, den, support, average):
  if average not in _AVERAGES:
    raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
  if jnp.ndim(num) == 0 or average is None:
    return _ratio(num, den)
  if average == "micro":
    return _ratio(jnp.sum(num), jnp.sum(den))
  per_class = _ratio(num, den)
  if average == "macro":
    return jnp.mean(per_class)
  return jnp.sum(per_class * support) / jnp.maximum(jnp.sum(support), 1)


def tpr(labels, scores, threshold: float = 0.5, average: Optional[str] = None):
  """True-positive rate TP / (TP + FN), also called recall, sensitivity or signal efficiency."""
  c = _counts(labels, scores, threshold)
  return _averaged(c.tp, c.tp + c.fn, c.tp + c.fn, average)


recall = tpr


def fpr(labels, scores, threshold: float = 0.5, average: Optional[str] = None):
  """False-positive rate FP / (FP + TN), the background efficiency (1 - specificity).

  ``"weighted"`` weights each class by its number of negatives (the denominator).
  """
  c = _counts(labels, scores, threshold)
  return _averaged(c.fp, c.fp + c.tn, c.fp + c.tn, average)


def precision(labels, scores, threshold: float = 0.5, average: Optional[str] = None):
  """Precision TP / (TP + FP), the purity of the selected sample."""
  c = _counts(labels, scores, threshold)
  return _averaged(c.tp, c.tp + c.fp, c.tp + c.fn, average)


def f1(labels, scores, threshold: float = 0.5, average: Optional[str] = None):
  """F1 score 2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall."""
  c = _counts(labels, scores, threshold)
  if average == "micro":
    return _averaged(2 * c.tp, 2 * c.tp + c.fp + c.fn, None, "micro")
  return _averaged(2 * c.tp, 2 * c.tp + c.fp + c.fn, c.tp + c.fn, average)


def roc_points(labels: jax.Array, scores: jax.Array):
  """The ROC curve at every example, fixed size and jit-able (binary).

  Sorts by decreasing score; point ``i`` selects every example scoring at least the
  ``i``-th highest score, so tied scores are selected together (ties are exact: all
  examples of a tie group carry the counts of the whole group).

  Args:
    labels: ``(n,)`` in ``{0, 1}``.
    scores: ``(n,)`` real scores, higher = more signal-like.

  Returns:
    ``(fps, tps, thresholds, last)``, each ``(n,)``: false- and true-positive counts
    (int32), the threshold (score) of each point in decreasing order, and a bool mask
    of the last point of each tie group (the distinct thresholds).
  """
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  n = scores.shape[0]
  neg_sorted, y = jax.lax.sort((-scores, (labels == 1).astype(jnp.int32)), num_keys=1)
  tps_raw = jnp.cumsum(y)
  idx = jnp.arange(n)
  last = jnp.concatenate([neg_sorted[1:] != neg_sorted[:-1], jnp.ones(1, bool)])
  # Index of the last element of each example's tie group: a reverse running minimum.
  end = jax.lax.cummin(jnp.where(last, idx, n), reverse=True)
  tps = tps_raw[end]
  fps = end + 1 - tps
  return fps.astype(jnp.int32), tps.astype(jnp.int32), -neg_sorted, last


def roc_curve(labels, scores, drop_intermediate: bool = True):
  """ROC curve ``(fpr, tpr, thresholds)`` as NumPy arrays, equal to scikit-learn's.

  The first point is ``(0, 0)`` at threshold ``+inf``; then one point per distinct
  score in decreasing order (ties handled exactly). With ``drop_intermediate`` points
  collinear with their neighbours are dropped, exactly as
  ``sklearn.metrics.roc_curve`` does. With no positives (negatives) the TPR (FPR) is
  NaN. Binary only: for class ``c`` of a multi-class problem pass
  ``(labels == c, scores[:, c])``.

  Returns:
    ``fpr``, ``tpr`` (float64, in [0, 1]) and ``thresholds`` (the scores' dtype, with
    ``inf`` first), each of length ``k + 1`` for ``k`` kept points.
  """
  fps, tps, thr, last = _roc_points_eager(labels, scores)
  fps, tps, thr = fps[last], tps[last], thr[last]
  if drop_intermediate and len(fps) > 2:
    keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
    fps, tps, thr = fps[keep], tps[keep], thr[keep]
  fps = np.r_[0, fps].astype(np.float64)
  tps = np.r_[0, tps].astype(np.float64)
  thr = np.r_[np.inf, thr]
  with np.errstate(invalid="ignore", divide="ignore"):
    return fps / fps[-1], tps / tps[-1], thr


_roc_points_jit = jax.jit(roc_points)


def _roc_points_eager(labels, scores):
  """:func:`roc_points` of concrete arrays, as NumPy arrays.

  On the CPU, NumPy does it with one sort of 64-bit words holding the score's
  order-preserving bits and then the label: XLA's CPU sort of a key with a payload
  is 15x slower (5,000,000 float32 scores: 0.2 s against 2.9 s; see
  ``benchmarks/metrics.py``). Elsewhere, and for 64-bit scores, the compiled version.
  """
  scores = np.asarray(scores) if jax.default_backend() == "cpu" else scores
  if not isinstance(scores, np.ndarray) or scores.dtype.itemsize > 4 or scores.ndim != 1:
    return jax.device_get(_roc_points_jit(labels, scores))
  bits = (np.asarray(scores, np.float32) + np.float32(0)).view(np.int32).astype(np.int64)  # -0 -> +0
  key = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # int order = float order
  words = np.sort(((key << 1) | (np.asarray(labels) == 1)).view(np.uint64) ^ np.uint64(1 << 63))[::-1]
  y = (words & np.uint64(1)).astype(np.int32)
  key = ((words ^ np.uint64(1 << 63)).view(np.int64) >> 1)
  last = np.r_[key[1:] != key[:-1], True]
  end = np.minimum.accumulate(np.where(last, np.arange(len(key)), len(key))[::-1])[::-1]
  tps = np.cumsum(y, dtype=np.int64)[end]
  thr = np.where(key < 0, key ^ 0x7FFFFFFF, key).astype(np.int32).view(np.float32)
  return (end + 1 - tps).astype(np.int32), tps.astype(np.int32), thr.astype(np.asarray(scores).dtype), last


def _binary_auc(labels, scores):
  fps, tps, _, _ = roc_points(labels, scores)
  n_pos, n_neg = tps[-1], fps[-1]
  fps_prev = jnp.concatenate([jnp.zeros(1, fps.dtype), fps[:-1]])
  tps_prev = jnp.concatenate([jnp.zeros(1, tps.dtype), tps[:-1]])
  # Trapezoids between consecutive points, in integer counts: both factors are exact
  # integers (< 2**24) in float32, so each term is rounded once. Points inside a tie
  # group coincide with the group's last point and add zero width: ties count one half.
  twice_area = (fps - fps_prev).astype(jnp.float32) * (tps + tps_prev).astype(jnp.float32)
  # Sum in blocks to keep the rounding of millions of terms at the 1e-7 level.
  pad = (-twice_area.shape[0]) % 1024
  total = jnp.sum(jnp.sum(jnp.pad(twice_area, (0, pad)).reshape(-1, 1024), axis=1))
  auc = total / (2.0 * n_pos.astype(jnp.float32) * n_neg.astype(jnp.float32))
  return jnp.where((n_pos > 0) & (n_neg > 0), auc, jnp.nan)


def _binary_auc_eager(labels, scores):
  """:func:`_binary_auc` of concrete arrays through :func:`_roc_points_eager` (float64 sum)."""
  fps, tps, _, last = _roc_points_eager(labels, scores)
  fps, tps = np.r_[0, fps[last]].astype(np.float64), np.r_[0, tps[last]].astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    auc = np.sum(np.diff(fps) * (tps[1:] + tps[:-1])) / (2 * fps[-1] * tps[-1])
  return jnp.asarray(auc, jnp.float32)


def roc_auc(labels, scores, average: Optional[str] = "macro"):
  """Area under the ROC curve (the probability that a random positive outscores a
  random negative, ties counting one half).

  Binary ``(n,)`` scores give a scalar. ``(n, C)`` scores give one-vs-rest AUCs,
  averaged ``"macro"`` or ``"weighted"`` by class support, or per class with
  ``average=None`` (``(C,)``). NaN where a class (or its complement) is absent.
  """
  if np.ndim(scores) == 1 and not any(isinstance(a, jax.core.Tracer) for a in (labels, scores)):
    return _binary_auc_eager(labels, scores)
  scores = jnp.asarray(scores)
  if scores.ndim == 1:
    return _binary_auc(labels, scores)
  if average not in (None, "macro", "weighted"):
    raise ValueError(f"roc_auc average must be None, 'macro' or 'weighted', got {average!r}")
  labels = _class_labels(labels)
  classes = jnp.arange(scores.shape[-1])
  per_class = jax.vmap(lambda c, s: _binary_auc(labels == c, s), in_axes=(0, 1))(classes, scores)
  if average is None:
    return per_class
  if average == "macro":
    return jnp.mean(per_class)
  support = jnp.sum(labels[:, None] == classes, axis=0)
  return jnp.sum(per_class * support) / jnp.sum(support)


def _rates(fps, tps):
  """TPR and FPR along the :func:`roc_points` curve (0 where a class is absent)."""
  return (tps / jnp.maximum(tps[-1], 1).astype(jnp.float32),
          fps / jnp.maximum(fps[-1], 1).astype(jnp.float32))


class WorkingPoint(NamedTuple):
  """A chosen cut: select ``scores >= threshold``; ``tpr`` and ``fpr`` achieved there."""

  threshold: jax.Array
  tpr: jax.Array
  fpr: jax.Array


def working_point(labels, scores, *, target_tpr=None, target_fpr=None) -> WorkingPoint:
  """Chooses the threshold for a target signal efficiency or background efficiency.

  With ``target_tpr`` it returns the highest threshold whose TPR reaches the target
  (the purest selection that keeps that much signal). With ``target_fpr`` it returns
  the lowest threshold whose FPR stays at or below the target (the most signal a
  background budget allows: "raise your threshold" to let fewer dogs through). If even
  the highest score exceeds the FPR budget, the threshold is ``+inf`` (select nothing).

  Args:
    labels: ``(n,)`` in ``{0, 1}``. scores: ``(n,)``. Exactly one target, in [0, 1].

  Returns:
    :class:`WorkingPoint` of scalars. Pure and jit-able.
  """
  if (target_tpr is None) == (target_fpr is None):
    raise ValueError("working_point needs exactly one of target_tpr or target_fpr")
  fps, tps, thr, _ = roc_points(labels, scores)
  tpr_, fpr_ = _rates(fps, tps)
  if target_tpr is not None:
    i = jnp.argmax(tpr_ >= target_tpr)  # first point (highest threshold) reaching it
    return WorkingPoint(thr[i], tpr_[i], fpr_[i])
  ok = fpr_ <= target_fpr
  i = ok.shape[0] - 1 - jnp.argmax(ok[::-1])  # last point within the budget
  none = ~jnp.any(ok)
  inf = jnp.asarray(jnp.inf, thr.dtype)
  return WorkingPoint(jnp.where(none, inf, thr[i]), jnp.where(none, 0.0, tpr_[i]),
                      jnp.where(none, 0.0, fpr_[i]))


def asimov_significance(s, b, relative_uncertainty: float = 0.0):
  r"""Expected discovery significance of ``s`` signal on ``b`` background events.

  The Asimov median significance of Cowan, Cranmer, Gross & Vitells (2011) with a
  background known to ``sigma_b = relative_uncertainty * b``:

  .. math::
     Z = \sqrt{2\Big[(s+b)\ln\frac{(s+b)(b+\sigma_b^2)}{b^2+(s+b)\sigma_b^2}
         - \frac{b^2}{\sigma_b^2}\ln\Big(1+\frac{\sigma_b^2 s}{b(b+\sigma_b^2)}\Big)\Big]},

  which is :math:`\sqrt{2((s+b)\ln(1+s/b) - s)}` for :math:`\sigma_b = 0` and
  :math:`s/\sqrt{b+\sigma_b^2}` for :math:`s \ll b`. Event counts (any shape,
  broadcast); returns Z in standard deviations.
  """
  s, b = jnp.asarray(s, jnp.float32), jnp.asarray(b, jnp.float32)
  r2 = jnp.asarray(relative_uncertainty, jnp.float32) ** 2
  # The log arguments minus one, in closed form (log1p keeps s << b accurate).
  term1 = (s + b) * jnp.log1p(s / (b * (1 + (s + b) * r2)))
  x = s / (1 + r2 * b)
  term2 = jnp.where(r2 > 0, jnp.log1p(r2 * x) / jnp.where(r2 > 0, r2, 1.0), x)
  return jnp.sqrt(jnp.maximum(2 * (term1 - term2), 0.0))


class Discovery(NamedTuple):
  """The best cut for a discovery: ``scores >= threshold``, efficiencies and Z there."""

  significance: jax.Array
  threshold: jax.Array
  tpr: jax.Array
  fpr: jax.Array


def discovery_significance(labels, scores, n_signal: float = 100.0, n_background: float = 1000.0,
                           relative_uncertainty: float = 0.05,
                           min_background: int = 10) -> Discovery:
  """Expected significance of a cut on ``scores``, maximised over the cut.

  A cut with signal efficiency ``tpr`` and background efficiency ``fpr`` keeps
  ``s = n_signal * tpr`` and ``b = n_background * fpr`` events with background
  uncertainty ``relative_uncertainty * b``; Z is :func:`asimov_significance`. The
  default is the SUSY benchmark of Baldi et al. (2014): 100 signal events on 1000 +- 50
  background. Cuts keeping fewer than ``min_background`` background examples of
  ``labels`` are skipped (their efficiency is a statistical fluke of the sample).

  Args:
    labels: ``(n,)`` in ``{0, 1}``. scores: ``(n,)``.

  Returns:
    :class:`Discovery` of scalars. Pure and jit-able.
  """
  fps, tps, thr, last = roc_points(labels, scores)
  tpr_, fpr_ = _rates(fps, tps)
  z = asimov_significance(n_signal * tpr_, n_background * fpr_, relative_uncertainty)
  z = jnp.where(last & (fps >= min_background), z, -jnp.inf)
  i = jnp.argmax(z)
  return Discovery(z[i], thr[i], tpr_[i], fpr_[i])
