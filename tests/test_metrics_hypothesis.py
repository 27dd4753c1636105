"""Randomized comparison of jaxphys.metrics with scikit-learn (hypothesis): binary and
multi-class, float16/32/64 and integer scores with many ties, with and without weights
(zeros included). Eager results must equal scikit-learn's to float64 rounding (ROC curves
bit for bit); jitted ones to float32 rounding."""

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

import jaxphys as jp

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8]


@st.composite
def binary_problems(draw):
  n = draw(st.integers(2, 50))
  y = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
  assume(0 < y.sum() < n)
  dtype = draw(st.sampled_from(DTYPES))
  levels = draw(st.sampled_from([2, 5, 50, 10**6]))  # few levels: many ties
  raw = draw(arrays(np.int64, n, elements=st.integers(0, levels)))
  if np.dtype(dtype).kind == "f":
    s = (raw / levels + draw(st.sampled_from([0.0, -0.5, 1e3]))).astype(dtype)
  else:
    s = (raw % 200 if dtype is np.uint8 else raw - levels // 2).astype(dtype)
  w = None
  if draw(st.booleans()):
    w = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 0.5, 1.0, 3.0]) | st.floats(0.01, 10)))
    assume(w[y == 1].sum() > 0 and w[y == 0].sum() > 0)
  return y, s, w


@SETTINGS
@given(binary_problems(), st.booleans())
def test_binary_ranking_equals_sklearn(problem, drop):
  y, s, w = problem
  ours = jp.roc_curve(y, s, drop, sample_weight=w)
  theirs = skm.roc_curve(y, s, drop_intermediate=drop, sample_weight=w)
  for a, b in zip(ours, theirs):
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b.astype(a.dtype))
  assert jp.roc_auc(y, s, sample_weight=w) == skm.roc_auc_score(y, s, sample_weight=w)
  for target in (0.0, 0.3, 0.8, 1.0):
    wp = jp.working_point(y, s, target_tpr=target, sample_weight=w)
    i = np.argmax(theirs[1] >= target)
    assert wp.tpr == theirs[1][i] and wp.fpr == theirs[0][i]


@SETTINGS
@given(binary_problems(), st.sampled_from(["binary", None, "macro", "weighted", "micro"]), st.data())
def test_binary_threshold_metrics_equal_sklearn(problem, average, data):
  y, s, w = problem
  thr = data.draw(st.sampled_from(list(s)))
  pred = (s >= thr).astype(int)
  for ours, theirs in [(jp.precision, skm.precision_score), (jp.recall, skm.recall_score), (jp.f1, skm.f1_score)]:
    expected = theirs(y, pred, average=average, sample_weight=w, zero_division=0, labels=[0, 1])
    np.testing.assert_allclose(ours(y, s, thr, average, sample_weight=w), expected, rtol=1e-12, atol=1e-15)
  if w is None or w.sum() > 0:
    assert jp.accuracy(y, s, thr, sample_weight=w) == pytest.approx(skm.accuracy_score(y, pred, sample_weight=w), rel=1e-12)


@st.composite
def multiclass_problems(draw):
  c = draw(st.integers(3, 5))
  n = draw(st.integers(c, 40))
  y = draw(arrays(np.int64, n, elements=st.integers(0, c - 1)))
  counts = draw(arrays(np.int64, (n, c), elements=st.integers(1, 4)))  # ties within columns and rows
  p = (counts / counts.sum(1, keepdims=True)).astype(draw(st.sampled_from([np.float32, np.float64])))
  w = None
  if draw(st.booleans()):
    w = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0, 2.5]) | st.floats(0.01, 10)))
    assume(w.sum() > 0)
  return y, p, w


@SETTINGS
@given(multiclass_problems(), st.sampled_from([None, "macro", "weighted", "micro"]))
def test_multiclass_equals_sklearn(problem, average):
  y, p, w = problem
  pred = p.argmax(1)
  c = p.shape[1]
  labels = range(c) if average is None else None
  for ours, theirs in [(jp.precision, skm.precision_score), (jp.recall, skm.recall_score), (jp.f1, skm.f1_score)]:
    expected = theirs(y, pred, average=average, sample_weight=w, zero_division=0, labels=labels)
    np.testing.assert_allclose(ours(y, p, average=average, sample_weight=w), expected, rtol=1e-12, atol=1e-15)
  assert jp.accuracy(y, p, sample_weight=w) == pytest.approx(skm.accuracy_score(y, pred, sample_weight=w), rel=1e-12)
  np.testing.assert_allclose(jp.confusion_matrix(y, pred, c, sample_weight=w),
                             skm.confusion_matrix(y, pred, labels=range(c), sample_weight=w), rtol=1e-12)
  ws = np.ones(len(y)) if w is None else w
  support = np.array([ws[y == k].sum() for k in range(c)])
  if np.all(support > 0) and np.all(support < ws.sum()) and len(np.unique(y)) == c:
    expected = skm.roc_auc_score(y, p, multi_class="ovr", average=average, sample_weight=w)
    np.testing.assert_allclose(jp.roc_auc(y, p, average, sample_weight=w), expected, rtol=1e-12)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.data())
def test_jitted_metrics_equal_sklearn(data):
  n = 40  # one shape: one compilation per function
  y = data.draw(arrays(np.int32, n, elements=st.integers(0, 1)))
  assume(0 < y.sum() < n)
  s = data.draw(arrays(np.int32, n, elements=st.integers(0, 9))).astype(np.float32) / 9
  w = data.draw(arrays(np.float32, n, elements=st.floats(0.125, 4, width=32)))
  thr = np.float32(data.draw(st.sampled_from(list(s))))
  got = _jitted(y, s, w, thr)
  pred = (s >= thr).astype(int)
  w64 = w.astype(np.float64)
  expected = (skm.roc_auc_score(y, s, sample_weight=w64), skm.precision_score(y, pred, sample_weight=w64, zero_division=0),
              skm.recall_score(y, pred, sample_weight=w64), skm.accuracy_score(y, pred, sample_weight=w64))
  np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-7)


@jax.jit
def _jitted(y, s, w, thr):
  return (jp.roc_auc(y, s, sample_weight=w), jp.precision(y, s, thr, sample_weight=w),
          jp.recall(y, s, thr, sample_weight=w), jp.accuracy(y, s, thr, sample_weight=w))
