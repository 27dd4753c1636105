"""Metrics of a prediction at a fixed threshold (private; see :mod:`jaxphys.metrics`).

Each rate is computed from one weighted confusion matrix: NumPy float64 on the host for
concrete inputs (exact counts without weights), ``jax.numpy`` under jit.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxphys import _metrics_inputs as _in

PosLabel = Union[int, float, str, None]  # the positive class: any label value; None: 1


def predict_classes(scores: jax.Array, threshold: float = 0.5) -> jax.Array:
  """Predicted classes: ``(n,)`` binary scores -> ``scores >= threshold``; ``(n, C)`` -> arg-max.

  Pure and jit-able (no value checks). Returns int32 ``(n,)``.

  >>> import jax.numpy as jnp
  >>> predict_classes(jnp.array([0.2, 0.7, 0.5]))
  Array([0, 1, 1], dtype=int32)
  >>> predict_classes(jnp.array([[0.1, 2.0], [3.0, -1.0]]))
  Array([1, 0], dtype=int32)
  """
  scores = jnp.asarray(scores)
  if scores.ndim == 2 and scores.shape[1] == 1:
    scores = scores[:, 0]
  if scores.ndim == 1:
    return (scores >= threshold).astype(jnp.int32)
  return jnp.argmax(scores, axis=-1).astype(jnp.int32)


def _class_labels(labels: jax.Array) -> jax.Array:
  """Traced labels -> int32 ``(n,)`` class indices (one-hot rows -> arg-max)."""
  labels = jnp.asarray(labels)
  if labels.ndim == 2:
    labels = labels[:, 0] if labels.shape[1] == 1 else jnp.argmax(labels, axis=-1)
  return labels.astype(jnp.int32)


def _true_and_predicted(labels, scores, threshold, sample_weight, pos_label):
  """``(true, pred, k, weights, xp)``: class indices in ``[0, k)`` and the array module.

  Binary problems map the positive class to 1 and everything else to 0.
  """
  binary = _in.check_shapes(labels, scores, sample_weight)
  if _in.is_traced(labels, scores, sample_weight, threshold):
    _in.check_threshold_shape(threshold)
    s = jnp.asarray(scores)
    if binary:
      y = jnp.asarray(labels)
      y = jnp.argmax(y, -1) if y.ndim == 2 and y.shape[1] == 2 else y.reshape(-1)
      true = (y == (1 if pos_label is None else pos_label)).astype(jnp.int32)
      pred = (s.reshape(-1) >= threshold).astype(jnp.int32)
    else:
      true, pred = _class_labels(labels), jnp.argmax(s, -1).astype(jnp.int32)
    return true, pred, 2 if binary else s.shape[1], _in.traced_weights(sample_weight), jnp
  s = _in.host_scores(scores)
  w = _in.host_weights(sample_weight)
  if binary:
    threshold = _in.host_threshold(threshold)
    if np.isnan(threshold):
      _in._fail("threshold", "is NaN")
    true = _in.host_binary_labels(labels, pos_label).astype(np.intp)
    return true, (s >= threshold).astype(np.intp), 2, w, np
  true = _in.host_class_labels(labels, s.shape[1])
  return true, np.argmax(s, axis=1), s.shape[1], w, np


def _confusion(true, pred, k, w, xp):
  """``(k, k)`` weighted counts (row: true class, column: predicted) and presence ``(k,)``."""
  if xp is np:
    ones = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    cm = ones if w is None else np.bincount(true * k + pred, w, minlength=k * k).reshape(k, k)
  else:  # a class outside [0, k) is dropped (a negative index would count from the end)
    true, pred = (jnp.where((c >= 0) & (c < k), c, k) for c in (true, pred))
    ones = jnp.zeros((k, k), jnp.int32).at[true, pred].add(1, mode="drop")
    cm = ones if w is None else jnp.zeros((k, k), w.dtype).at[true, pred].add(w, mode="drop")
  present = (ones.sum(0) + ones.sum(1)) > 0
  return cm, present


def _ratio(num, den, xp):
  num = num.astype(np.float64) if xp is np else num.astype(jnp.result_type(float, num))
  return xp.where(den != 0, num / xp.where(den != 0, den, 1), 0.0)


def _averaged(num, den, weight, present, average, classes, binary, xp):
  """scikit-learn's averaging of per-class ratios ``num / den`` (0 where ``den`` is 0)."""
  _in.check_average(average)
  if average == "binary":
    if not binary:
      _in._fail("average", "'binary' needs a two-class problem; use None, 'micro', 'macro' or 'weighted' "
                           "for (n, C) scores")
    return _ratio(num[1], den[1], xp)[()]
  if classes is not None:
    idx = np.asarray(classes).reshape(-1)
    if idx.dtype.kind not in "iu" or idx.size == 0 or idx.min() < 0 or idx.max() >= num.shape[0]:
      _in._fail("classes", f"must be class indices in [0, {num.shape[0]}), got {list(classes)}")
    num, den, weight, present = num[idx], den[idx], weight[idx], xp.ones(idx.size, bool)
  if average is None:
    return _ratio(num, den, xp)
  if average == "micro":
    return _ratio(num.sum(), den.sum(), xp)[()]
  per_class = xp.where(present, _ratio(num, den, xp), 0.0)
  weight = xp.where(present, weight, 0)
  if average == "macro":
    return (per_class.sum() / xp.maximum(present.sum(), 1))[()]
  return _ratio((per_class * weight).sum(), weight.sum(), xp)[()]


def _rate(kind: str, labels, scores, threshold, average, sample_weight, pos_label, classes):
  true, pred, k, w, xp = _true_and_predicted(labels, scores, threshold, sample_weight, pos_label)
  cm, present = _confusion(true, pred, k, w, xp)
  tp = xp.diagonal(cm)
  fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
  tn = cm.sum() - tp - fp - fn
  support = tp + fn
  num, den, weight = {"tpr": (tp, tp + fn, support), "fpr": (fp, fp + tn, fp + tn),
                      "precision": (tp, tp + fp, support),
                      "f1": (2 * tp, 2 * tp + fp + fn, support)}[kind]
  return _averaged(num, den, weight, present, average, classes, k == 2, xp)


def _documented(weighting: str):
  """Completes a rate's docstring with the arguments every rate shares."""
  def wrap(fn):
    fn.__doc__ = fn.__doc__.replace("{common}", _COMMON.format(weighting=weighting).strip())
    return fn
  return wrap


_COMMON = """
  Args:
    labels: ``(n,)`` true classes (binary: 0/1 or -1/1, or two values with
      ``pos_label``; multi-class: integers in ``[0, C)``), or one-hot ``(n, C)`` rows.
    scores: ``(n,)`` (or ``(n, 1)``) binary scores, predicted positive where
      ``scores >= threshold``; or ``(n, C)`` scores, predicted class = arg-max.
    threshold: the binary cut (unused for ``(n, C)`` scores).
    average: ``"binary"`` (default): the positive class's value, binary scores only.
      ``None``: one value per class, shape ``(2,)`` (binary: [negative, positive])
      or ``(C,)`` (or one per ``classes``). ``"macro"``: the plain mean over the
      classes present in ``labels`` or in the predictions (scikit-learn's rule), or
      over ``classes`` when given. ``"weighted"``: the mean weighted by {weighting}.
      ``"micro"``: from the counts pooled over the classes.
    sample_weight: ``(n,)`` per-example weights (counts become sums of weights).
    pos_label: the positive class of binary ``labels`` (default 1).
    classes: scikit-learn's ``labels=``: the class indices to report or average over.

  A ratio whose denominator is 0 is 0.0 (scikit-learn's default ``zero_division``).
  Checked eagerly: shapes, lengths, empty input, non-finite scores and weights,
  label values. Under ``jax.jit`` only shapes are checked. Eager results are NumPy
  float64, computed on the host; jitted ones JAX floats.
"""


@_documented("each class's support (its weight in ``labels``)")
def tpr(labels: jax.Array, scores: jax.Array, threshold: float = 0.5, average: Optional[str] = "binary",
        *, sample_weight: Optional[jax.Array] = None, pos_label: PosLabel = None,
        classes: Optional[Sequence[int]] = None) -> jax.Array:
  """True-positive rate TP / (TP + FN): recall, sensitivity, signal efficiency.

  Equals ``sklearn.metrics.recall_score`` of the predictions.

  {common}

  >>> float(tpr([0, 1, 1, 1], [0.9, 0.8, 0.4, 0.6]))
  0.6666666666666666
  """
  return _rate("tpr", labels, scores, threshold, average, sample_weight, pos_label, classes)


recall = tpr


@_documented("each class's negatives (the denominator)")
def fpr(labels: jax.Array, scores: jax.Array, threshold: float = 0.5, average: Optional[str] = "binary",
        *, sample_weight: Optional[jax.Array] = None, pos_label: PosLabel = None,
        classes: Optional[Sequence[int]] = None) -> jax.Array:
  """False-positive rate FP / (FP + TN): background efficiency, 1 - specificity.

  Not in scikit-learn; the one-vs-rest counts are those of
  ``sklearn.metrics.multilabel_confusion_matrix``.

  {common}

  >>> float(fpr([0, 0, 1, 1], [0.9, 0.2, 0.4, 0.6]))
  0.5
  """
  return _rate("fpr", labels, scores, threshold, average, sample_weight, pos_label, classes)


@_documented("each class's support")
def precision(labels: jax.Array, scores: jax.Array, threshold: float = 0.5,
              average: Optional[str] = "binary", *, sample_weight: Optional[jax.Array] = None,
              pos_label: PosLabel = None, classes: Optional[Sequence[int]] = None) -> jax.Array:
  """Precision TP / (TP + FP), the purity of the selected sample.

  Equals ``sklearn.metrics.precision_score`` of the predictions.

  {common}

  >>> float(precision([0, 0, 1, 1], [0.9, 0.2, 0.4, 0.6]))
  0.5
  """
  return _rate("precision", labels, scores, threshold, average, sample_weight, pos_label, classes)


@_documented("each class's support")
def f1(labels: jax.Array, scores: jax.Array, threshold: float = 0.5, average: Optional[str] = "binary",
       *, sample_weight: Optional[jax.Array] = None, pos_label: PosLabel = None,
       classes: Optional[Sequence[int]] = None) -> jax.Array:
  """F1 score 2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall.

  Equals ``sklearn.metrics.f1_score`` of the predictions.

  {common}

  >>> float(f1([0, 0, 1, 1], [0.9, 0.2, 0.4, 0.6]))
  0.5
  """
  return _rate("f1", labels, scores, threshold, average, sample_weight, pos_label, classes)


def accuracy(labels: jax.Array, scores: jax.Array, threshold: float = 0.5, *,
             sample_weight: Optional[jax.Array] = None, pos_label: PosLabel = None) -> jax.Array:
  """Fraction of examples (of weight, with ``sample_weight``) whose predicted class is the label.

  Equals ``sklearn.metrics.accuracy_score`` of the predictions. ``labels``, ``scores``,
  ``threshold``, ``sample_weight`` and ``pos_label`` as for :func:`precision`;
  checked the same way. Returns a scalar in [0, 1] (0.0 if all weights are 0).

  >>> float(accuracy([0, 1, 1, 0], [0.2, 0.7, 0.4, 0.1]))
  0.75
  >>> float(accuracy([2, 0], [[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]))
  1.0
  """
  true, pred, _, w, xp = _true_and_predicted(labels, scores, threshold, sample_weight, pos_label)
  hit = (true == pred).astype(np.float64 if xp is np else jnp.float32)
  if w is None:
    return hit.mean()[()]
  return _ratio((hit * w).sum(), w.sum(), xp)[()]


def confusion_matrix(labels: jax.Array, predictions: jax.Array, num_classes: int = 2, *,
                     sample_weight: Optional[jax.Array] = None,
                     normalize: Optional[str] = None) -> jax.Array:
  """``(num_classes, num_classes)`` counts; row = true class, column = predicted class.

  As ``sklearn.metrics.confusion_matrix(labels, predictions, labels=range(num_classes))``.

  Args:
    labels: ``(n,)`` true classes in ``[0, num_classes)`` (or one-hot rows).
    predictions: ``(n,)`` predicted classes (see :func:`predict_classes`).
    num_classes: static under jit.
    sample_weight: ``(n,)`` weights: entries are sums of weights.
    normalize: None (counts), ``"true"`` (rows sum to 1), ``"pred"`` (columns) or
      ``"all"``; a zero row/column stays 0.

  Eagerly every value is checked; under jit only shapes (a class outside the range
  is then dropped). Eager counts are int64 (float64 with weights or ``normalize``).

  >>> confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0])
  array([[2, 0],
         [1, 1]])
  """
  if normalize not in (None, "true", "pred", "all"):
    _in._fail("normalize", f"must be None, 'true', 'pred' or 'all', got {normalize!r}")
  _in.check_shapes(labels, predictions, sample_weight, binary=True, scores_name="predictions")
  if _in.is_traced(labels, predictions, sample_weight):
    true, pred = _class_labels(labels), jnp.asarray(predictions).reshape(-1).astype(jnp.int32)
    w, xp = _in.traced_weights(sample_weight), jnp
  else:
    true = _in.host_class_labels(labels, num_classes)
    pred = np.asarray(predictions).reshape(-1)
    if pred.dtype.kind == "b" or pred.dtype.kind == "f":
      pred = _in._integer_valued("predictions", pred)
    if pred.dtype.kind not in "iu" or pred.min() < 0 or pred.max() >= num_classes:
      _in._fail("predictions", f"must be class indices in [0, {num_classes})")
    w, xp = _in.host_weights(sample_weight), np
  cm, _ = _confusion(true, pred.astype(np.intp) if xp is np else pred, num_classes, w, xp)
  if normalize is not None:
    axis = {"true": 1, "pred": 0, "all": None}[normalize]
    cm = _ratio(cm, cm.sum(axis=axis, keepdims=axis is not None), xp)
  return cm
