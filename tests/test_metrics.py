"""jaxphys.metrics: the eager (host) and jitted paths against scikit-learn, weights,
precision, thresholds that reproduce their rates, working points and the discovery
significance. Wrong inputs: tests/test_metrics_errors.py; scikit-learn's own cases:
tests/test_metrics_sklearn.py; randomized comparisons: tests/test_metrics_hypothesis.py."""

import jax
import mpmath
import numpy as np
import pytest
from sklearn import metrics as skm

import jaxphys as jp
from jaxphys import metrics


def _binary(seed, n=2000, decimals=1, dtype=np.float32):
  """Binary labels and scores rounded to ``decimals`` (heavy ties)."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  s = np.round(np.clip(rng.normal(0.5 + 0.2 * (y - 0.5), 0.25), 0, 1), decimals).astype(dtype)
  return y, s


def _multiclass(seed, n=3000, c=5):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, c, n)
  logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y]
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  return y, np.round(p, 2).astype(np.float32)


def _weights(seed, n):
  w = np.random.default_rng(seed).uniform(0, 2, n)
  w[::17] = 0.0
  return w


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("average", ["binary", None, "macro", "weighted", "micro"])
def test_binary_threshold_metrics(average, weighted):
  y, s = _binary(0, decimals=2)
  w = _weights(1, len(y)) if weighted else None
  pairs = [(jp.precision, skm.precision_score), (jp.recall, skm.recall_score),
           (jp.tpr, skm.recall_score), (jp.f1, skm.f1_score)]
  traced = jax.jit(lambda y, s, w, t: [ours(y, s, t, average, sample_weight=w) for ours, _ in pairs])
  for thr in (0.3, 0.5, 0.7):
    pred = (s >= thr).astype(int)
    for (ours, theirs), jitted in zip(pairs, traced(y, s, w, thr)):
      expected = theirs(y, pred, average=average, sample_weight=w, zero_division=0)
      np.testing.assert_allclose(ours(y, s, thr, average, sample_weight=w), expected, rtol=1e-13)
      np.testing.assert_allclose(jitted, expected, rtol=2e-6)
    assert jp.accuracy(y, s, thr, sample_weight=w) == pytest.approx(
        skm.accuracy_score(y, pred, sample_weight=w), rel=1e-13)
    mcm = skm.multilabel_confusion_matrix(y, pred, sample_weight=w)  # [[tn, fp], [fn, tp]]
    per_class = mcm[:, 0, 1] / mcm[:, 0].sum(1)
    expected = {"binary": per_class[1], None: per_class, "macro": per_class.mean(),
                "weighted": np.average(per_class, weights=mcm[:, 0].sum(1)),
                "micro": mcm[:, 0, 1].sum() / mcm[:, 0].sum()}[average]
    np.testing.assert_allclose(jp.fpr(y, s, thr, average, sample_weight=w), expected, rtol=1e-13)
    np.testing.assert_allclose(jp.confusion_matrix(y, pred, 2, sample_weight=w),
                               skm.confusion_matrix(y, pred, sample_weight=w), rtol=1e-13)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("average", [None, "macro", "weighted", "micro"])
def test_multiclass_rates_average_over_present_labels(average, weighted):
  y, p = _multiclass(3, c=5)
  y = np.where(y == 4, 0, y)  # class 4 absent from the labels (it may still be predicted)
  p[:, 3] = 0.0  # class 3 never predicted
  w = _weights(2, len(y)) if weighted else None
  pred = p.argmax(1)
  labels = range(5) if average is None else None  # average=None: every column
  pairs = [(jp.precision, skm.precision_score), (jp.recall, skm.recall_score), (jp.f1, skm.f1_score)]
  traced = jax.jit(lambda y, p, w: [ours(y, p, average=average, sample_weight=w) for ours, _ in pairs])
  for (ours, theirs), jitted in zip(pairs, traced(y, p, w)):
    expected = theirs(y, pred, average=average, sample_weight=w, labels=labels, zero_division=0)
    np.testing.assert_allclose(ours(y, p, average=average, sample_weight=w), expected, rtol=1e-13)
    np.testing.assert_allclose(jitted, expected, rtol=2e-6)
    expected = theirs(y, pred, average=average, sample_weight=w, labels=[0, 4, 2], zero_division=0)
    np.testing.assert_allclose(ours(y, p, average=average, sample_weight=w, classes=[0, 4, 2]),
                               expected, rtol=1e-13)
  np.testing.assert_array_equal(jp.confusion_matrix(y, pred, 5), skm.confusion_matrix(y, pred, labels=range(5)))
  assert jp.accuracy(jp.one_hot(y, 5), p, sample_weight=w) == pytest.approx(
      skm.accuracy_score(y, pred, sample_weight=w), rel=1e-13)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("weighted", [False, True])
def test_roc_curve_and_auc_equal_sklearn(dtype, weighted):
  y, s = _binary(4, decimals=2, dtype=np.float64)
  s = (s * 100).astype(dtype) if np.dtype(dtype).kind in "iu" else s.astype(dtype)
  w = _weights(5, len(y)) if weighted else None
  for drop in (True, False):
    ours = jp.roc_curve(y, s, drop, sample_weight=w)
    theirs = skm.roc_curve(y, s, drop_intermediate=drop, sample_weight=w)
    for a, b in zip(ours, theirs):
      np.testing.assert_array_equal(a, b.astype(a.dtype))  # bit for bit
    assert ours[2].dtype == (s.dtype if s.dtype.kind == "f" else np.float64)
  assert jp.roc_auc(y, s, sample_weight=w) == skm.roc_auc_score(y, s, sample_weight=w)
  traced = jax.jit(lambda y, s, w: jp.roc_auc(y, s, sample_weight=w))(y, s, w)
  np.testing.assert_allclose(traced, skm.roc_auc_score(y, s, sample_weight=w), atol=1e-6)


@pytest.mark.parametrize("average", [None, "macro", "weighted", "micro"])
@pytest.mark.parametrize("weighted", [False, True])
def test_roc_auc_multiclass_one_vs_rest(average, weighted):
  y, p = _multiclass(6)
  p = p.astype(np.float64) / p.sum(1, keepdims=True)  # sklearn requires rows summing to one
  w = _weights(7, len(y)) if weighted else None
  expected = skm.roc_auc_score(y, p, multi_class="ovr", average=average, sample_weight=w)
  np.testing.assert_allclose(jp.roc_auc(y, p, average, sample_weight=w), expected, rtol=1e-13)
  p32 = p.astype(np.float32)  # what jit sees (float64 scores tie differently in float32)
  expected = skm.roc_auc_score(y, p32, multi_class="ovr", average=average, sample_weight=w)
  traced = jax.jit(lambda y, p, w: jp.roc_auc(y, p, average, sample_weight=w))(y, p32, w)
  np.testing.assert_allclose(traced, expected, atol=2e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")  # sklearn's own call
def test_roc_auc_weighted_skips_an_absent_class_as_sklearn():
  y, p = _multiclass(8, c=4)
  y, p = np.where(y == 2, 0, y), p.astype(np.float64) / p.sum(1, keepdims=True)
  expected = skm.roc_auc_score(y, p, multi_class="ovr", average="weighted", labels=[0, 1, 2, 3])
  np.testing.assert_allclose(jp.roc_auc(y, p, "weighted"), expected, rtol=1e-13)
  np.testing.assert_allclose(jax.jit(lambda y, p: jp.roc_auc(y, p, "weighted"))(y, p), expected, atol=2e-6)
  with pytest.raises(ValueError, match="labels: class 2: no positive examples"):
    jp.roc_auc(y, p, "macro")
  assert np.isnan(jax.jit(jp.roc_auc)(y, p))  # under jit: NaN, as scikit-learn's macro


def test_float64_and_int64_scores_keep_their_precision():
  assert jp.roc_auc([0, 1], np.array([0.1, 0.1 + 1e-12])) == 1.0
  s = np.random.default_rng(0).random(200_000)  # float64, all distinct
  y = (np.arange(200_000) % 2)
  assert len(jp.roc_curve(y, s, drop_intermediate=False)[0]) == 200_001
  big = 2**62 + np.arange(4, dtype=np.int64)  # equal in float64
  assert jp.roc_auc([0, 0, 1, 1], big) == 1.0
  assert jp.roc_auc([0, 0, 1, 1], 2**25 + np.arange(4, dtype=np.int32)) == 1.0  # equal in float32
  wp = jp.working_point([0, 0, 1, 1], big, target_fpr=0.0)
  assert wp.threshold == 2**62 + 2 and wp.threshold.dtype == np.int64 and wp.tpr == 1.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("weighted", [False, True])
def test_thresholds_reproduce_the_reported_rates(dtype, weighted):
  y, s = _binary(9, n=1000, decimals=3, dtype=np.float64)
  s = (s * 1000).astype(dtype) if np.dtype(dtype).kind == "i" else s.astype(dtype)
  w = _weights(10, len(y)) if weighted else None
  tol = dict(rtol=1e-14) if weighted else dict(rtol=0)  # weighted sums add in another order
  fpr, tpr, thr = jp.roc_curve(y, s, sample_weight=w)
  for f, t, c in zip(fpr[1:], tpr[1:], thr[1:]):
    np.testing.assert_allclose([jp.fpr(y, s, c, sample_weight=w), jp.tpr(y, s, c, sample_weight=w)], [f, t], **tol)
  for target in (0.0, 0.05, 0.5, 0.93, 1.0):
    for wp in (jp.working_point(y, s, target_tpr=target, sample_weight=w),
               jp.working_point(y, s, target_fpr=target, sample_weight=w)):
      got = [jp.tpr(y, s, wp.threshold, sample_weight=w), jp.fpr(y, s, wp.threshold, sample_weight=w)]
      np.testing.assert_allclose(got, [wp.tpr, wp.fpr], **tol)


@pytest.mark.parametrize("seed", [0, 1])
def test_working_point_against_brute_force(seed):
  y, s = _binary(seed, n=1000, decimals=2)
  w = _weights(seed, len(y))
  fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False, sample_weight=w)
  traced = jax.jit(lambda y, s, w, t: jp.working_point(y, s, target_tpr=t, sample_weight=w))
  for target in (0.0, 0.1, 0.5, 0.9, 1.0):
    i = np.argmax(tpr >= target)  # highest threshold reaching the target TPR
    for wp in (jp.working_point(y, s, target_tpr=target, sample_weight=w), traced(y, s, w, target)):
      assert float(wp.threshold) == np.float32(thr[i])
      np.testing.assert_allclose((wp.tpr, wp.fpr), (tpr[i], fpr[i]), atol=1e-6)
    i = np.nonzero(fpr <= target)[0].max()  # lowest threshold within the FPR budget
    wp = jp.working_point(y, s, target_fpr=target, sample_weight=w)
    assert float(wp.threshold) == np.float32(thr[i])
    np.testing.assert_allclose((wp.tpr, wp.fpr), (tpr[i], fpr[i]), atol=1e-15)


def test_working_point_impossible_budget_selects_nothing():
  y = np.array([0, 1, 0, 1])
  for s in (np.array([0.9, 0.8, 0.9, 0.1], np.float32), np.array([9, 8, 9, 1])):
    wp = jp.working_point(y, s, target_fpr=0.0)
    assert np.isinf(wp.threshold) and wp.tpr == 0.0 and wp.fpr == 0.0
    assert jp.tpr(y, s, wp.threshold) == 0.0


def test_eager_roc_points_equal_the_compiled_ones():
  rng = np.random.default_rng(3)
  for dtype, w in ((np.float16, None), (np.float32, rng.random(3000).astype(np.float32)),
                   (np.float64, None), (np.int32, rng.random(3000))):
    s = np.round(rng.normal(size=3000) * 3, 1)
    s = (s * 10).astype(dtype) if dtype is np.int32 else s.astype(dtype)
    s[:5] = 0
    if dtype is not np.int32:
      s[5:10] = -0.0
    y = rng.integers(0, 2, 3000)
    eager = jp.roc_points(y, s, sample_weight=w)
    compiled = jax.device_get(jax.jit(lambda y, s, w: jp.roc_points(y, s, sample_weight=w))(y, s, w))
    for a, b in zip(eager, compiled):
      assert a.shape == b.shape == (3000,)
      np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-5)
    np.testing.assert_array_equal(eager[2].astype(compiled[2].dtype), compiled[2])


def test_metrics_are_jittable_and_vmappable():
  y, s = _binary(7, n=500)
  f = jax.jit(lambda y, s: (jp.accuracy(y, s), jp.tpr(y, s), jp.fpr(y, s), jp.f1(y, s), jp.roc_auc(y, s)))
  np.testing.assert_allclose(f(y, s), (jp.accuracy(y, s), jp.tpr(y, s), jp.fpr(y, s), jp.f1(y, s),
                                       jp.roc_auc(y, s)), atol=1e-6)
  batch = jax.vmap(jp.roc_auc, in_axes=(None, 0))(y, np.stack([s, 1 - s]))
  np.testing.assert_allclose(batch[0] + batch[1], 1.0, atol=1e-6)
  assert jax.jit(jp.metrics.predict_classes)(s).dtype == np.int32


def test_pos_label_and_column_shapes():
  y, s = _binary(11, n=300)
  names = np.where(y == 1, 2, 1)  # labels {1, 2}, 2 positive
  assert jp.roc_auc(names, s, pos_label=2) == skm.roc_auc_score(y, s)
  np.testing.assert_array_equal(jp.roc_curve(names, s, pos_label=2)[1], skm.roc_curve(names, s, pos_label=2)[1])
  assert jp.precision(names, s, pos_label=2) == skm.precision_score(names, np.where(s >= 0.5, 2, 1), pos_label=2)
  assert jp.roc_auc(2 * y - 1, s) == jp.roc_auc(y, s) == jp.roc_auc(y[:, None], s[:, None])
  assert jp.accuracy(y[:, None], s) == skm.accuracy_score(y, s >= 0.5)
  assert jp.accuracy(y.astype(bool), s) == jp.accuracy(y.astype(np.float32), s)


# --- discovery significance ------------------------------------------------------------

def _asimov_mpmath(s, b, rel):
  """Cowan et al. (2011), the discovery case with an uncertain background, 50 digits."""
  with mpmath.workdps(50):
    s, b = mpmath.mpf(float(s)), mpmath.mpf(float(b))
    var = (mpmath.mpf(float(rel)) * b) ** 2
    if var == 0:
      return float(mpmath.sqrt(2 * ((s + b) * mpmath.log(1 + s / b) - s)))
    t1 = (s + b) * mpmath.log((s + b) * (b + var) / (b ** 2 + (s + b) * var))
    t2 = b ** 2 / var * mpmath.log(1 + var * s / (b * (b + var)))
    return float(mpmath.sqrt(2 * (t1 - t2)))


CASES = [(100, 1000, 0.05), (30, 5, 0.1), (10, 1000, 0.0), (50, 200, 0.3), (1e-6, 1e3, 0.05),
         (1e-3, 1e6, 0.0), (1.0, 1e4, 0.01), (1e5, 10, 0.5), (0.37, 0.2, 1.5), (3.0, 50.0, 0.2)]


@pytest.mark.parametrize("s,b,rel", CASES)
def test_asimov_significance_matches_mpmath(s, b, rel):
  ref = _asimov_mpmath(s, b, rel)
  assert jp.metrics.asimov_significance(s, b, rel) == pytest.approx(ref, rel=1e-14)
  traced = jax.jit(jp.metrics.asimov_significance)(np.float32(s), np.float32(b), rel)
  assert float(traced) == pytest.approx(ref, rel=3e-6)  # float32: a few roundings


def test_asimov_significance_is_accurate_for_tiny_s_over_b():
  for ratio in 10.0 ** -np.arange(1, 12):
    ref = _asimov_mpmath(ratio * 1e3, 1e3, 0.05)
    assert jp.metrics.asimov_significance(ratio * 1e3, 1e3, 0.05) == pytest.approx(ref, rel=1e-14)
    got = jax.jit(jp.metrics.asimov_significance)(np.float32(ratio * 1e3), np.float32(1e3), 0.05)
    assert float(got) == pytest.approx(_asimov_mpmath(np.float32(ratio * 1e3), 1e3, 0.05), rel=3e-6)


def test_asimov_significance_is_accurate_when_the_background_uncertainty_dominates():
  # sigma_b^2 >> b: Z ~ s / sigma_b; the old form g(u) - g(qu)/q cancelled as q -> 1
  # (float32 under jit returned 0 for the last case, float64 lost 8 digits).
  for s, b, rel in [(10.0, 1e6, 0.05), (1e3, 1e8, 0.05), (1e6, 1e6, 0.05), (5.0, 1e7, 0.2),
                    (0.01, 2.6e8, 0.7)]:
    assert jp.metrics.asimov_significance(s, b, rel) == pytest.approx(_asimov_mpmath(s, b, rel), rel=1e-14)
    got = jax.jit(jp.metrics.asimov_significance)(np.float32(s), np.float32(b), np.float32(rel))
    ref = _asimov_mpmath(np.float32(s), np.float32(b), np.float32(rel))
    assert float(got) == pytest.approx(ref, rel=3e-6)


def _asimov_float64(s, b, rel):
  var = (rel * b) ** 2
  t1 = (s + b) * np.log((s + b) * (b + var) / (b ** 2 + (s + b) * var))
  return np.sqrt(2 * (t1 - b ** 2 / var * np.log(1 + var * s / (b * (b + var)))))


def test_discovery_significance_is_the_best_cut():
  rng = np.random.default_rng(0)
  n = 1500
  y = rng.integers(0, 2, n)
  scores = np.round(rng.normal(size=n) + 1.5 * y, 2)
  w = rng.uniform(0.5, 1.5, n)
  for sw in (None, w):
    ws = np.ones(n) if sw is None else sw
    best = 0.0
    for t in np.unique(scores):  # brute force over cuts keeping >= 10 background examples
      sel = scores >= t
      if np.count_nonzero(sel & (y == 0)) >= 10:
        tpr, fpr = ws[sel & (y == 1)].sum() / ws[y == 1].sum(), ws[sel & (y == 0)].sum() / ws[y == 0].sum()
        best = max(best, _asimov_float64(100 * tpr, 1000 * fpr, 0.05))
    d = jp.discovery_significance(y, scores, sample_weight=sw)
    assert d.significance == pytest.approx(best, rel=1e-12)
    dj = jax.jit(lambda y, s, w: jp.discovery_significance(y, s, sample_weight=w))(y, scores, sw)
    assert float(dj.significance) == pytest.approx(best, rel=1e-5)
    sel = scores >= d.threshold
    assert d.tpr == pytest.approx(ws[sel & (y == 1)].sum() / ws[y == 1].sum(), rel=1e-14)
    # The same cut quoted at a fixed threshold, eagerly and under jit.
    fixed = jp.discovery_significance(y, scores, sample_weight=sw, threshold=d.threshold)
    assert fixed.significance == pytest.approx(d.significance, rel=1e-13)
    fj = jax.jit(lambda y, s, w, t: jp.discovery_significance(y, s, sample_weight=w, threshold=t))(
        y, scores, sw, d.threshold)
    assert float(fj.significance) == pytest.approx(d.significance, rel=1e-5)


def test_discovery_significance_at_a_fixed_cut_on_new_data():
  rng = np.random.default_rng(1)
  y = rng.integers(0, 2, 3000)
  s = rng.normal(size=3000) + 1.5 * y
  d = jp.discovery_significance(y, s, threshold=1.0)
  sel = s >= 1.0
  tpr, fpr = sel[y == 1].mean(), sel[y == 0].mean()
  assert (d.tpr, d.fpr, d.threshold) == (tpr, fpr, 1.0)
  assert d.significance == pytest.approx(_asimov_mpmath(100 * tpr, 1000 * fpr, 0.05), rel=1e-14)
  assert jp.discovery_significance(y, s, threshold=100.0).significance == np.inf  # no background kept
