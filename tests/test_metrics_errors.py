"""Every wrong input of issue 20 (and its neighbours) gets a one-line ValueError naming
the argument; inputs that only look odd ((n, 1) columns, -1/1 labels) give
scikit-learn's numbers."""

import jax
import numpy as np
import pytest
from sklearn import metrics as skm

import jaxphys as jp
from jaxphys import metrics

Y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
S = np.array([0.1, 0.8, 0.3, 0.6, 0.4, 0.2, 0.9, 0.7], np.float32)
RANKING = [lambda y, s: jp.roc_auc(y, s), lambda y, s: jp.roc_curve(y, s),
           lambda y, s: jp.roc_points(y, s), lambda y, s: jp.working_point(y, s, target_tpr=0.5),
           lambda y, s: jp.discovery_significance(y, s, min_background=1)]
THRESHOLD = [jp.accuracy, jp.precision, jp.recall, jp.fpr, jp.f1]
ALL = RANKING + THRESHOLD


def _raises(fn, *args, match, **kwargs):
  with pytest.raises(ValueError, match=match) as info:
    fn(*args, **kwargs)
  assert "\n" not in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fn", ALL)
def test_non_finite_scores(fn, bad, dtype):
  s = S.astype(dtype)
  s[3] = bad
  _raises(fn, Y, s, match=r"^scores: 1 value\(s\) are NaN or infinite")


@pytest.mark.parametrize("fn", ALL)
def test_lengths_and_empty_input(fn):
  _raises(fn, Y[:-1], S, match=r"^labels: length 7 does not match scores' length 8")
  _raises(fn, np.array([], int), np.array([], np.float32), match=r"^scores: empty input")
  _raises(fn, [], [], match=r"^scores: empty input")  # accuracy([], []) was NaN
  if fn is not RANKING[1]:  # roc_curve is eager only
    _raises(jax.jit(fn), Y[:-1], S, match=r"^labels: length 7")  # shapes are checked under jit too


@pytest.mark.parametrize("fn", THRESHOLD + [jp.roc_auc, jp.roc_curve, jp.roc_points])
def test_sample_weight_shape_and_values(fn):
  _raises(fn, Y, S, sample_weight=np.ones(7), match=r"^sample_weight: length 7 does not match")
  _raises(jp.precision, Y, S, sample_weight=np.ones((8, 2)), match=r"^sample_weight: expected shape")
  _raises(jp.roc_auc, Y, S, sample_weight=np.r_[np.nan, np.ones(7)], match=r"^sample_weight: contains NaN")
  _raises(jp.roc_curve, Y, S, sample_weight=np.zeros(8), match=r"^sample_weight: every weight is zero")


@pytest.mark.parametrize("fn", RANKING[:2] + RANKING[3:])  # roc_points gives counts, defined
def test_single_class_where_a_rate_is_undefined(fn):
  _raises(fn, np.ones(8, int), S, match=r"^labels: no negative examples")
  _raises(fn, np.zeros(8, int), S, match=r"^labels: no positive examples")
  assert jp.precision(np.ones(8, int), S) == skm.precision_score(np.ones(8, int), S >= 0.5)  # defined


@pytest.mark.parametrize("fn", ALL)
def test_binary_label_values(fn):
  _raises(fn, Y + 1, S, match=r"^labels: binary labels must be 0/1 or -1/1, got values \[1, 2\]")
  _raises(fn, np.r_[Y[:-1], 2], S, match=r"^labels: binary labels must be")  # multiclass, 1-D scores
  if fn in THRESHOLD:
    _raises(fn, np.r_[Y[:-1], 2], S, pos_label=1, match=r"^labels: more than two classes")


def test_labels_one_to_two_mean_pos_label():
  names = Y + 1
  assert jp.roc_auc(names, S, pos_label=2) == skm.roc_auc_score(Y, S)
  assert jp.f1(names, S, pos_label=2) == skm.f1_score(names, np.where(S >= 0.5, 2, 1), pos_label=2)


def test_multiclass_label_values():
  p = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
  for fn in (jp.accuracy, lambda y, s: jp.precision(y, s, average="macro"), jp.roc_auc):
    _raises(fn, [0, 1, 3, 1], p, match=r"^labels: class 3 has no score column \(scores have 3 columns\)")
    _raises(fn, [0, 1, -1, 1], p, match=r"^labels: negative class label -1")
    _raises(fn, [0, 1, 0.5, 1], p, match=r"^labels: expected integer class labels")
    _raises(fn, np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0, 0]]), p, match=r"^labels: \(n, 3\) labels must be one-hot")
  _raises(jp.confusion_matrix, [0, -1, 1], [0, 1, 1], match=r"^labels: negative class label -1")
  _raises(jp.confusion_matrix, [0, 2, 1], [0, 1, 1], match=r"^labels: class 2 has no score column")
  _raises(jp.confusion_matrix, [0, 1, 1], [0, 1, 2], match=r"^predictions: must be class indices in \[0, 2\)")


def test_shapes_follow_sklearn():
  # (n, 1) scores were read as 1 - AUC; (n, 1) labels as one-hot rows.
  assert jp.roc_auc(Y, S[:, None]) == jp.roc_auc(Y[:, None], S) == skm.roc_auc_score(Y, S)
  y = np.array([0, 1, 1, 1, 0, 0, 1, 1])
  s = np.array([0.2, 0.9, 0.8, 0.7, 0.1, 0.6, 0.4, 0.6], np.float32)
  assert jp.accuracy(y[:, None], s) == skm.accuracy_score(y, s >= 0.5) == 0.75
  assert jp.accuracy(y[:, None], s[:, None]) == 0.75
  _raises(jp.roc_auc, Y, S[:, None, None], match=r"^scores: expected shape")
  _raises(jp.roc_curve, Y, np.stack([S, S], 1), match=r"^scores: expected shape \(n,\) or \(n, 1\), got \(8, 2\)")
  _raises(jp.accuracy, np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]], S, match=r"^labels: one-hot rows of 3 classes")
  _raises(jp.accuracy, np.stack([Y, Y, Y], 1)[:, :2].T, S, match=r"^labels: length 2")


def test_averages():
  p = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
  _raises(jp.precision, [0, 1, 2, 1], p, match=r"^average: 'binary' needs a two-class problem")
  _raises(jp.precision, Y, S, average="samples", match=r"^average: must be one of")
  _raises(jp.roc_auc, Y, S, average="binary", match=r"^average: must be one of")
  _raises(jp.recall, [0, 1, 2, 1], p, average="macro", classes=[0, 3], match=r"^classes: must be class indices in \[0, 3\)")


def test_working_point_targets():
  _raises(jp.working_point, Y, S, target_tpr=1.5, match=r"^target_tpr: must be in \[0, 1\], got 1.5")
  _raises(jp.working_point, Y, S, target_fpr=-0.1, match=r"^target_fpr: must be in \[0, 1\]")
  _raises(jp.working_point, Y, S, target_fpr=float("nan"), match=r"^target_fpr: must be in \[0, 1\]")
  _raises(jp.working_point, Y, S, match=r"^target_tpr: working_point needs exactly one")
  _raises(jp.working_point, Y, S, target_tpr=0.5, target_fpr=0.5, match=r"exactly one")
  # Integer scores with target_fpr raised OverflowError.
  wp = jp.working_point(Y, (S * 10).astype(np.int64), target_fpr=0.25)
  assert wp.threshold.dtype == np.int64 and jp.fpr(Y, (S * 10).astype(np.int64), wp.threshold) == wp.fpr


def test_threshold_and_roc_curve_under_jit():
  _raises(jp.precision, Y, S, float("nan"), match=r"^threshold: is NaN")
  _raises(jax.jit(jp.roc_curve), Y, S, match=r"^scores: roc_curve's length depends on the values")


def test_physics_arguments():
  _raises(metrics.asimov_significance, 1.0, 0.0, match=r"^b: background events must be finite and > 0")
  _raises(metrics.asimov_significance, -1.0, 10.0, match=r"^s: signal events must be finite and >= 0")
  _raises(metrics.asimov_significance, 1.0, 10.0, -0.1, match=r"^relative_uncertainty: must be finite")
  _raises(jp.discovery_significance, Y, S, n_signal=0, match=r"^n_signal: must be a finite number > 0")
  _raises(jp.discovery_significance, Y, S, min_background=2.5, match=r"^min_background: must be an integer")
  _raises(jp.discovery_significance, Y, S, min_background=5, match=r"^min_background: no cut keeps 5 background")
  _raises(jp.discovery_significance, Y, S, threshold=float("nan"), match=r"^threshold: must be a finite number")


def test_confusion_matrix_normalize_argument():
  _raises(jp.confusion_matrix, Y, Y, normalize="rows", match=r"^normalize: must be None")
