"""scikit-learn's own test cases (sklearn/metrics/tests/test_ranking.py and
test_classification.py, release 1.9) that apply to jaxphys.metrics, ported.

jaxphys takes scores, not predicted classes: a prediction ``pred`` is passed as binary
scores with ``threshold=0.5`` or as one-hot ``(n, C)`` scores. Where scikit-learn warns
and returns NaN (a class missing) jaxphys raises; those cases are ported as errors.
"""

import functools
from itertools import chain, permutations

import numpy as np
import pytest
from numpy.testing import assert_almost_equal, assert_array_almost_equal, assert_array_equal
from sklearn import datasets, svm
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import auc, roc_auc_score
from sklearn.utils import check_random_state

import jaxphys as jp


@functools.cache
def make_prediction(binary=False, classifier="logistic"):
  """scikit-learn's helper: a classifier of iris plus 800 noise features (a logistic
  regression in test_ranking.py, a calibrated linear SVM in test_classification.py)."""
  dataset = datasets.load_iris()
  X, y = dataset.data, dataset.target
  if binary:
    X, y = X[y < 2], y[y < 2]
  n_samples, n_features = X.shape
  p = np.arange(n_samples)
  check_random_state(37).shuffle(p)
  X, y = X[p], y[p]
  half = int(n_samples / 2)
  X = np.c_[X, np.random.RandomState(0).randn(n_samples, 200 * n_features)]
  clf = (LogisticRegression(random_state=0) if classifier == "logistic" else
         CalibratedClassifierCV(svm.SVC(kernel="linear", random_state=0), ensemble=False, cv=3))
  y_score = clf.fit(X[:half], y[:half]).predict_proba(X[half:])
  if binary:
    y_score = y_score[:, 1]
  return y[half:], clf.predict(X[half:]), y_score


def _onehot(pred, c):
  return np.eye(c)[np.asarray(pred)]


# --- test_ranking.py ----------------------------------------------------------------

@pytest.mark.parametrize("drop", [True, False])
def test_roc_curve(drop):
  y_true, _, y_score = make_prediction(binary=True)
  fpr, tpr, thresholds = jp.roc_curve(y_true, y_score, drop_intermediate=drop)
  assert_almost_equal(auc(fpr, tpr), jp.roc_auc(y_true, y_score))
  assert_almost_equal(jp.roc_auc(y_true, y_score), roc_auc_score(y_true, y_score))
  assert fpr.shape == tpr.shape == thresholds.shape


def test_roc_curve_end_points():
  rng = np.random.RandomState(0)
  y_true = np.array([0] * 50 + [1] * 50)
  y_pred = rng.randint(3, size=100)
  fpr, tpr, thr = jp.roc_curve(y_true, y_pred, drop_intermediate=True)
  assert fpr[0] == 0 and fpr[-1] == 1
  assert fpr.shape == tpr.shape == thr.shape


def test_roc_returns_consistency():
  y_true, _, y_score = make_prediction(binary=True)
  fpr, tpr, thresholds = jp.roc_curve(y_true, y_score)
  tpr_correct = [np.sum((y_score >= t) & (y_true == 1)) / np.sum(y_true) for t in thresholds]
  assert_array_equal(tpr, tpr_correct)  # exactly, not to 2 decimals
  assert fpr.shape == tpr.shape == thresholds.shape


def test_roc_curve_multi():
  y_true, _, y_score = make_prediction(binary=False)
  with pytest.raises(ValueError):
    jp.roc_curve(y_true, y_score)


def test_roc_curve_confidence():
  y_true, _, y_score = make_prediction(binary=True)
  fpr, tpr, thresholds = jp.roc_curve(y_true, y_score - 0.5)
  assert_array_almost_equal(auc(fpr, tpr), 0.90, decimal=2)
  assert fpr.shape == tpr.shape == thresholds.shape


def test_roc_curve_hard():
  y_true, pred, _ = make_prediction(binary=True)
  for trivial in (np.ones(y_true.shape), np.zeros(y_true.shape)):
    fpr, tpr, thresholds = jp.roc_curve(y_true, trivial)
    assert_array_almost_equal(auc(fpr, tpr), 0.50, decimal=2)
    assert fpr.shape == tpr.shape == thresholds.shape
  fpr, tpr, thresholds = jp.roc_curve(y_true, pred)
  assert_array_almost_equal(auc(fpr, tpr), 0.78, decimal=2)


def test_roc_curve_one_label():
  # scikit-learn warns and returns NaN rates; jaxphys raises (a deliberate difference).
  y_true = [1] * 10
  y_pred = [0, 1] * 5
  with pytest.raises(ValueError, match="labels: no negative examples"):
    jp.roc_curve(y_true, y_pred)
  with pytest.raises(ValueError, match="labels: no positive examples"):
    jp.roc_curve([1 - x for x in y_true], y_pred)


@pytest.mark.parametrize("y_true,y_score,expected_tpr,expected_fpr,expected_auc", [
    ([0, 1], [0, 1], [0, 1, 1], [0, 0, 1], 1.0),
    ([0, 1], [1, 0], [0, 0, 1], [0, 1, 1], 0.0),
    ([1, 0], [1, 1], [0, 1], [0, 1], 0.5),
    ([1, 0], [1, 0], [0, 1, 1], [0, 0, 1], 1.0),
    ([1, 0], [0.5, 0.5], [0, 1], [0, 1], 0.5),
])
def test_roc_curve_toydata(y_true, y_score, expected_tpr, expected_fpr, expected_auc):
  # scikit-learn names the outputs (tpr, fpr) the other way round in this test.
  fpr, tpr, _ = jp.roc_curve(y_true, y_score)
  assert_array_almost_equal(tpr, expected_tpr)
  assert_array_almost_equal(fpr, expected_fpr)
  assert_almost_equal(jp.roc_auc(y_true, y_score), expected_auc)


def test_roc_curve_toydata_multilabel_as_one_hot():
  # scikit-learn's 2-label cases, as two one-vs-rest classes of one-hot labels.
  y_true = np.array([[1, 0], [0, 1]])
  assert_almost_equal(jp.roc_auc(y_true, np.array([[0, 1], [1, 0]]), "macro"), 0)
  assert_almost_equal(jp.roc_auc(y_true, np.array([[0, 1], [1, 0]]), "micro"), 0)
  for average in ("macro", "weighted", "micro"):
    assert_almost_equal(jp.roc_auc(y_true, np.array([[0.5, 0.5], [0.5, 0.5]]), average), 0.5)


def test_roc_curve_drop_intermediate():
  _, _, thresholds = jp.roc_curve([0, 0, 0, 0, 1, 1], [0.0, 0.2, 0.5, 0.6, 0.7, 1.0])
  assert_array_almost_equal(thresholds, [np.inf, 1.0, 0.7, 0.0])
  y_true = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
  y_score = [0.0, 0.1, 0.6, 0.6, 0.7, 0.8, 0.9, 0.6, 0.7, 0.8, 0.9, 0.9, 1.0]
  _, _, thresholds = jp.roc_curve(y_true, y_score)
  assert_array_almost_equal(thresholds, [np.inf, 1.0, 0.9, 0.7, 0.6, 0.0])


def test_roc_curve_fpr_tpr_increasing():
  fpr, tpr, _ = jp.roc_curve([0, 0, 1, 1, 1], [0.1, 0.7, 0.3, 0.4, 0.5], sample_weight=np.repeat(0.2, 5))
  assert (np.diff(fpr) < 0).sum() == 0 and (np.diff(tpr) < 0).sum() == 0


def test_auc_score_non_binary_class():
  y_pred = check_random_state(404).rand(10)
  for y_true in (np.zeros(10, int), np.ones(10, int), np.full(10, -1)):
    with pytest.raises(ValueError, match="labels: no (positive|negative) examples"):
      jp.roc_auc(y_true, y_pred)


def test_zero_weights_are_not_thresholds():
  # test_sort_inputs_and_compute_classification_thresholds_zero_weights
  y_true = np.array([0, 1, 0, 1, 0, 1])
  y_score = np.array([0.1, 0.9, 0.3, 0.7, 0.5, 0.2])
  _, _, thr = jp.roc_curve(y_true, y_score, drop_intermediate=False,
                           sample_weight=np.array([0.0, 2.0, 1.0, 1.5, 0.0, 0.8]))
  assert 0.1 not in thr and 0.5 not in thr and len(thr) == 5
  with pytest.raises(ValueError, match="sample_weight: every weight is zero"):
    jp.roc_curve([0, 1, 0], [0.1, 0.9, 0.3], sample_weight=[0.0, 0.0, 0.0])


def test_input_validation():
  # test_sort_inputs_and_compute_classification_thresholds_input_validation
  with pytest.raises(ValueError, match="length"):
    jp.roc_curve(np.array([0, 1, 0]), np.array([0.1, 0.9]))
  with pytest.raises(ValueError, match="NaN"):
    jp.roc_curve(np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.3, 0.7]))


@pytest.mark.parametrize("labels", [None, [0, 1, 2]])
def test_multiclass_ovr_roc_auc_toydata(labels):
  y_true = np.array([0, 1, 2, 2])
  y_scores = np.array([[1.0, 0.0, 0.0], [0.1, 0.5, 0.4], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
  out = [roc_auc_score([1, 0, 0, 0], y_scores[:, 0]), roc_auc_score([0, 1, 0, 0], y_scores[:, 1]),
         roc_auc_score([0, 0, 1, 1], y_scores[:, 2])]
  assert_almost_equal(jp.roc_auc(y_true, y_scores, average=None), out)
  assert_almost_equal(jp.roc_auc(y_true, y_scores), np.mean(out))
  assert_almost_equal(jp.roc_auc(y_true, y_scores, "weighted"), out[0] * 0.25 + out[1] * 0.25 + out[2] * 0.5)


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_perfect_imperfect_chance_multiclass_roc_auc(average):
  y_true = np.array([3, 1, 2, 0])
  y_perfect = [[0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.75, 0.05, 0.05, 0.15]]
  assert_almost_equal(jp.roc_auc(y_true, np.array(y_perfect), average), 1.0)
  y_imperfect = [[0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
  assert jp.roc_auc(y_true, np.array(y_imperfect), average) < 1.0
  assert jp.roc_auc(y_true, 0.25 * np.ones((4, 4)), average) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_micro_averaged_ovr_roc_auc(seed):
  rng = np.random.default_rng(seed)
  y_pred = rng.dirichlet([2.0, 1.0, 0.5], size=1000)
  y_true = np.array([rng.multinomial(1, p).argmax() for p in y_pred])
  fpr, tpr, _ = jp.roc_curve(np.eye(3)[y_true].ravel(), y_pred.ravel())
  assert jp.roc_auc(y_true, y_pred, "micro") == pytest.approx(auc(fpr, tpr))
  assert jp.roc_auc(y_true, y_pred, "micro") == roc_auc_score(y_true, y_pred, multi_class="ovr", average="micro")


def test_score_scale_invariance():
  y_true, _, y_score = make_prediction(binary=True)
  roc_auc = jp.roc_auc(y_true, y_score)
  assert roc_auc == jp.roc_auc(y_true, 100 * y_score) == jp.roc_auc(y_true, 1e-6 * y_score)
  assert roc_auc == jp.roc_auc(y_true, y_score - 10)


# --- test_classification.py -----------------------------------------------------------

def test_precision_recall_f1_score_binary():
  y_true, y_pred, _ = make_prediction(binary=True, classifier="svm")
  assert_array_almost_equal(jp.precision(y_true, y_pred, average=None), [0.73, 0.85], 2)
  assert_array_almost_equal(jp.recall(y_true, y_pred, average=None), [0.88, 0.68], 2)
  assert_array_almost_equal(jp.f1(y_true, y_pred, average=None), [0.80, 0.76], 2)
  for kwargs in [{}, {"average": "binary"}]:
    assert_array_almost_equal(jp.precision(y_true, y_pred, **kwargs), 0.85, 2)
    assert_array_almost_equal(jp.recall(y_true, y_pred, **kwargs), 0.68, 2)
    assert_array_almost_equal(jp.f1(y_true, y_pred, **kwargs), 0.76, 2)


def test_precision_recall_f_binary_single_class():
  for fn in (jp.precision, jp.recall, jp.f1):
    assert 1.0 == fn([1, 1], [1, 1])
    assert 0.0 == fn([-1, -1], [-1, -1])


def test_precision_recall_f_extra_labels():
  y_true, y_pred = [1, 3, 3, 2], _onehot([1, 1, 3, 2], 5)
  actual = jp.recall(y_true, y_pred, average=None, classes=[0, 1, 2, 3, 4])
  assert_array_almost_equal([0.0, 1.0, 1.0, 0.5, 0.0], actual)
  actual = jp.recall(y_true, y_pred, average="macro", classes=[0, 1, 2, 3, 4])
  assert_array_almost_equal(np.mean([0.0, 1.0, 1.0, 0.5, 0.0]), actual)
  for average in ["micro", "weighted"]:
    assert_almost_equal(jp.recall(y_true, y_pred, average=average, classes=[0, 1, 2, 3, 4]),
                        jp.recall(y_true, y_pred, average=average))
  with pytest.raises(ValueError, match="classes"):
    jp.recall(y_true, y_pred, average="macro", classes=np.arange(6))
  with pytest.raises(ValueError, match="classes"):
    jp.recall(y_true, y_pred, average="macro", classes=np.arange(-1, 4))


def test_precision_recall_f_ignored_labels():
  y_true, y_pred = [1, 1, 2, 3], _onehot([1, 3, 3, 3], 5)
  recall_13 = functools.partial(jp.recall, y_true, y_pred, classes=[1, 3])
  recall_all = functools.partial(jp.recall, y_true, y_pred)
  assert_array_almost_equal([0.5, 1.0], recall_13(average=None))
  assert_almost_equal((0.5 + 1.0) / 2, recall_13(average="macro"))
  assert_almost_equal((0.5 * 2 + 1.0 * 1) / 3, recall_13(average="weighted"))
  assert_almost_equal(2.0 / 3, recall_13(average="micro"))
  for average in ["macro", "weighted", "micro"]:
    assert recall_13(average=average) != recall_all(average=average)


def test_confusion_matrix_binary():
  y_true, y_pred, _ = make_prediction(binary=True, classifier="svm")
  assert_array_equal(jp.confusion_matrix(y_true, y_pred), [[22, 3], [8, 17]])


@pytest.mark.parametrize("normalize, cm_dtype, expected_results",
                         [("true", "f", 0.333333333), ("pred", "f", 0.333333333),
                          ("all", "f", 0.1111111111), (None, "i", 2)])
def test_confusion_matrix_normalize(normalize, cm_dtype, expected_results):
  y_test = [0, 1, 2] * 6
  y_pred = list(chain(*permutations([0, 1, 2])))
  cm = jp.confusion_matrix(y_test, y_pred, 3, normalize=normalize)
  np.testing.assert_allclose(cm, expected_results)
  assert cm.dtype.kind == cm_dtype


def test_confusion_matrix_normalize_single_class():
  y_test = [0, 0, 0, 0, 1, 1, 1, 1]
  y_pred = [0, 0, 0, 0, 0, 0, 0, 0]
  assert jp.confusion_matrix(y_test, y_pred, normalize="true").sum() == pytest.approx(2.0)
  with np.errstate(all="raise"):
    assert jp.confusion_matrix(y_test, y_pred, normalize="pred").sum() == pytest.approx(1.0)
    jp.confusion_matrix(y_pred, y_test, normalize="true")


def test_confusion_matrix_dtype():
  y = [0, 1, 1]
  weight = np.ones(len(y))
  assert jp.confusion_matrix(y, y).dtype == np.int64
  for dtype in (np.float16, np.float32, np.int32, np.int64, np.uint32):
    cm = jp.confusion_matrix(y, y, sample_weight=weight.astype(dtype))
    assert cm.dtype == np.float64 and cm.sum() == 3


def test_precision_recall_f1_score_multiclass():
  y_true, y_pred, _ = make_prediction(binary=False, classifier="svm")
  scores = _onehot(y_pred, 3)
  assert_array_almost_equal(jp.precision(y_true, scores, average=None), [0.83, 0.33, 0.42], 2)
  assert_array_almost_equal(jp.recall(y_true, scores, average=None), [0.79, 0.09, 0.90], 2)
  assert_array_almost_equal(jp.f1(y_true, scores, average=None), [0.81, 0.15, 0.57], 2)
  for fn in (jp.precision, jp.recall, jp.f1):
    assert_array_almost_equal(fn(y_true, scores, average="micro"), 0.53, 2)
  assert_array_almost_equal(jp.precision(y_true, scores, average="macro"), 0.53, 2)
  assert_array_almost_equal(jp.recall(y_true, scores, average="macro"), 0.60, 2)
  assert_array_almost_equal(jp.f1(y_true, scores, average="macro"), 0.51, 2)
  assert_array_almost_equal(jp.precision(y_true, scores, average="weighted"), 0.51, 2)
  assert_array_almost_equal(jp.recall(y_true, scores, average="weighted"), 0.53, 2)
  assert_array_almost_equal(jp.f1(y_true, scores, average="weighted"), 0.47, 2)
  for fn in (jp.precision, jp.recall, jp.f1):
    with pytest.raises(ValueError, match="average"):
      fn(y_true, scores, average="samples")
  assert_array_almost_equal(jp.precision(y_true, scores, average=None, classes=[0, 2, 1]), [0.83, 0.41, 0.33], 2)
  assert_array_almost_equal(jp.recall(y_true, scores, average=None, classes=[0, 2, 1]), [0.79, 0.90, 0.10], 2)


def test_precision_recall_f1_score_binary_averaged():
  y_true = np.array([0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1])
  y_pred = np.array([1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1])
  support = np.bincount(y_true)
  for fn in (jp.precision, jp.recall, jp.f1):
    per_class = fn(y_true, y_pred, average=None)
    assert fn(y_true, y_pred, average="macro") == np.mean(per_class)
    assert fn(y_true, y_pred, average="weighted") == np.average(per_class, weights=support)


def test_zero_precision_recall():
  y_true = np.array([0, 1, 2, 0, 1, 2])
  scores = _onehot([2, 0, 1, 1, 2, 0], 3)
  with np.errstate(all="raise"):
    for fn in (jp.precision, jp.recall, jp.f1):
      assert_almost_equal(fn(y_true, scores, average="macro"), 0.0, 2)
