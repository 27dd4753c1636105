"""Every metric against scikit-learn on the same inputs, ties and degenerate cases."""

import warnings

import jax
import numpy as np
import pytest
from sklearn import metrics as skm

import jaxphys as jp


def _binary(seed, n=2000, decimals=1):
  """Binary labels and scores rounded to ``decimals`` (heavy ties)."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  s = np.round(np.clip(rng.normal(0.5 + 0.2 * (y - 0.5), 0.25), 0, 1), decimals).astype(np.float32)
  return y, s


def _multiclass(seed, n=3000, c=5):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, c, n)
  logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y]
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  return y, np.round(p, 2).astype(np.float32)


@pytest.mark.parametrize("seed,decimals", [(0, 1), (1, 2), (2, 6)])
def test_binary_threshold_metrics(seed, decimals):
  y, s = _binary(seed, decimals=decimals)
  for thr in (0.3, 0.5, 0.7):
    pred = (s >= thr).astype(int)
    np.testing.assert_allclose(jp.accuracy(y, s, thr), skm.accuracy_score(y, pred), atol=1e-6)
    np.testing.assert_allclose(jp.precision(y, s, thr), skm.precision_score(y, pred), atol=1e-6)
    np.testing.assert_allclose(jp.recall(y, s, thr), skm.recall_score(y, pred), atol=1e-6)
    np.testing.assert_allclose(jp.tpr(y, s, thr), skm.recall_score(y, pred), atol=1e-6)
    np.testing.assert_allclose(jp.f1(y, s, thr), skm.f1_score(y, pred), atol=1e-6)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    np.testing.assert_allclose(jp.fpr(y, s, thr), fp / (fp + tn), atol=1e-6)
    np.testing.assert_array_equal(jp.confusion_matrix(y, pred, 2), skm.confusion_matrix(y, pred))


@pytest.mark.parametrize("average", [None, "macro", "weighted", "micro"])
def test_multiclass_one_vs_rest_rates(average):
  y, p = _multiclass(3)
  pred = p.argmax(1)
  for ours, theirs in [(jp.precision, skm.precision_score), (jp.recall, skm.recall_score),
                       (jp.f1, skm.f1_score)]:
    np.testing.assert_allclose(ours(y, p, average=average), theirs(y, pred, average=average), atol=1e-6)
  mcm = skm.multilabel_confusion_matrix(y, pred)  # (C, 2, 2): [[tn, fp], [fn, tp]]
  fpr_per_class = mcm[:, 0, 1] / (mcm[:, 0, 1] + mcm[:, 0, 0])
  expected = {None: fpr_per_class, "macro": fpr_per_class.mean(),
              "weighted": np.average(fpr_per_class, weights=mcm[:, 0].sum(1)),
              "micro": mcm[:, 0, 1].sum() / mcm[:, 0].sum()}[average]
  np.testing.assert_allclose(jp.fpr(y, p, average=average), expected, atol=1e-6)
  np.testing.assert_array_equal(jp.confusion_matrix(y, pred, 5), skm.confusion_matrix(y, pred))
  np.testing.assert_allclose(jp.accuracy(jp.one_hot(y, 5), p), skm.accuracy_score(y, pred), atol=1e-6)


@pytest.mark.parametrize("seed,decimals", [(0, 1), (1, 2), (4, 6)])
@pytest.mark.parametrize("drop", [True, False])
def test_roc_curve_equals_sklearn(seed, decimals, drop):
  y, s = _binary(seed, decimals=decimals)
  ours = jp.roc_curve(y, s, drop_intermediate=drop)
  theirs = skm.roc_curve(y, s, drop_intermediate=drop)
  for a, b in zip(ours, theirs):
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("seed,decimals", [(0, 1), (1, 2), (5, 6)])
def test_roc_auc_binary_equals_sklearn(seed, decimals):
  y, s = _binary(seed, n=5000, decimals=decimals)
  np.testing.assert_allclose(jp.roc_auc(y, s), skm.roc_auc_score(y, s), atol=1e-6)
  np.testing.assert_allclose(jax.jit(jp.roc_auc)(y, s), skm.roc_auc_score(y, s), atol=1e-6)


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_roc_auc_multiclass_one_vs_rest(average):
  y, p = _multiclass(6)
  p = p / p.sum(1, keepdims=True)  # sklearn requires rows summing to one
  np.testing.assert_allclose(jp.roc_auc(y, p, average=average),
                             skm.roc_auc_score(y, p, multi_class="ovr", average=average), atol=1e-6)
  per_class = jp.roc_auc(y, p, average=None)
  assert per_class.shape == (5,)
  for c in range(5):
    np.testing.assert_allclose(per_class[c], skm.roc_auc_score(y == c, p[:, c]), atol=1e-6)


def test_metrics_are_jittable_and_vmappable():
  y, s = _binary(7, n=500)
  f = jax.jit(lambda y, s: (jp.accuracy(y, s), jp.tpr(y, s), jp.fpr(y, s), jp.f1(y, s),
                            jp.roc_auc(y, s)))
  np.testing.assert_allclose(f(y, s), (jp.accuracy(y, s), jp.tpr(y, s), jp.fpr(y, s),
                                       jp.f1(y, s), jp.roc_auc(y, s)), atol=1e-7)
  np.testing.assert_allclose(f(y, s)[4], skm.roc_auc_score(y, s), atol=1e-6)
  batch = jax.vmap(jp.roc_auc, in_axes=(None, 0))(y, np.stack([s, 1 - s]))
  np.testing.assert_allclose(batch[0] + batch[1], 1.0, atol=1e-6)


def test_degenerate_inputs_documented_behaviour():
  y1 = np.ones(10, int)
  s = np.linspace(0, 1, 10).astype(np.float32)
  # One class only: AUC undefined -> NaN, as sklearn; ROC FPR NaN like sklearn.
  assert np.isnan(jp.roc_auc(y1, s))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    assert np.isnan(skm.roc_auc_score(y1, s))
    f_ours, t_ours, _ = jp.roc_curve(y1, s)
    f_sk, t_sk, _ = skm.roc_curve(y1, s)
  np.testing.assert_array_equal(np.isnan(f_ours), np.isnan(f_sk))
  np.testing.assert_allclose(t_ours, t_sk)
  # Constant scores: one tie group, AUC exactly 0.5.
  y = np.array([0, 1, 0, 1, 1])
  c = np.full(5, 0.3, np.float32)
  assert float(jp.roc_auc(y, c)) == 0.5 == skm.roc_auc_score(y, c)
  # No positive prediction: precision is 0.0, as sklearn's default zero_division.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    assert float(jp.precision(y, c, 0.9)) == skm.precision_score(y, (c >= 0.9).astype(int)) == 0.0
  # No positives at all: recall 0.0; no negatives: FPR 0.0.
  assert float(jp.recall(np.zeros(5, int), c)) == 0.0
  assert float(jp.fpr(np.ones(5, int), c)) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_eager_roc_points_equal_the_compiled_ones(dtype):
  # Concrete CPU inputs sort in NumPy (packed 64-bit words); traced ones in XLA.
  rng = np.random.default_rng(3)
  s = np.round(rng.normal(size=3000) * 3, 1).astype(dtype)
  s[:5], s[5:10], s[10], s[11] = -0.0, 0.0, np.inf, -np.inf
  y = rng.integers(0, 2, 3000)
  eager, compiled = jp.metrics._roc_points_eager(y, s), jax.device_get(jax.jit(jp.roc_points)(y, s))
  for a, b in zip(eager, compiled):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(jp.roc_auc(y, s), jax.jit(jp.roc_auc)(y, s), atol=1e-6)


def test_roc_points_fixed_size():
  y, s = _binary(8, n=300)
  fps, tps, thr, last = jax.jit(jp.roc_points)(y, s)
  for a in (fps, tps, thr, last):
    assert a.shape == (300,)
  assert fps[-1] == (y == 0).sum() and tps[-1] == (y == 1).sum()
  assert np.all(np.diff(np.asarray(thr)) <= 0)


@pytest.mark.parametrize("seed", [0, 1, 9])
def test_working_point_against_brute_force(seed):
  y, s = _binary(seed, n=1000, decimals=2)
  fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
  for target in (0.1, 0.5, 0.9, 1.0):
    wp = jp.working_point(y, s, target_tpr=target)
    i = np.argmax(tpr >= target)  # highest threshold reaching the target TPR
    assert float(wp.threshold) == thr[i]
    np.testing.assert_allclose((wp.tpr, wp.fpr), (tpr[i], fpr[i]), atol=1e-6)
    assert float(wp.tpr) >= target - 1e-6
    wp = jp.working_point(y, s, target_fpr=target)
    i = np.nonzero(fpr <= target)[0].max()  # lowest threshold within the FPR budget
    assert float(wp.threshold) == thr[i]
    np.testing.assert_allclose((wp.tpr, wp.fpr), (tpr[i], fpr[i]), atol=1e-6)
    # The chosen cut really achieves these rates.
    np.testing.assert_allclose(jp.tpr(y, s, wp.threshold), wp.tpr, atol=1e-6)


def test_working_point_impossible_budget_selects_nothing():
  y = np.array([0, 1, 0, 1])
  s = np.array([0.9, 0.8, 0.9, 0.1], np.float32)
  wp = jp.working_point(y, s, target_fpr=0.0)
  assert np.isinf(wp.threshold) and float(wp.tpr) == 0.0 and float(wp.fpr) == 0.0
  with pytest.raises(ValueError, match="exactly one"):
    jp.working_point(y, s)


def test_bad_average_is_an_error():
  y, p = _multiclass(0, n=50)
  with pytest.raises(ValueError, match="average must be one of"):
    jp.precision(y, p, average="samples")


# --- discovery significance ------------------------------------------------------------

def _asimov_reference(s, b, sigma):
  """Cowan et al. (2011), eq. (20) of the Asimov paper's discovery case, float64."""
  if sigma == 0:
    return np.sqrt(2 * ((s + b) * np.log(1 + s / b) - s))
  t1 = (s + b) * np.log((s + b) * (b + sigma ** 2) / (b ** 2 + (s + b) * sigma ** 2))
  t2 = b ** 2 / sigma ** 2 * np.log(1 + sigma ** 2 * s / (b * (b + sigma ** 2)))
  return np.sqrt(2 * (t1 - t2))


@pytest.mark.parametrize("s,b,rel", [(100, 1000, 0.05), (30, 5, 0.1), (10, 1000, 0.0), (50, 200, 0.3)])
def test_asimov_significance_matches_the_formula(s, b, rel):
  np.testing.assert_allclose(jp.metrics.asimov_significance(s, b, rel), _asimov_reference(s, b, rel * b),
                             rtol=2e-5)


def test_asimov_significance_limits():
  # s << b: s / sqrt(b + sigma_b^2); no uncertainty and s << b: s / sqrt(b).
  np.testing.assert_allclose(jp.metrics.asimov_significance(1.0, 1e4, 0.0), 1e-2, rtol=1e-3)
  np.testing.assert_allclose(jp.metrics.asimov_significance(1.0, 1e4, 0.01), 1 / np.sqrt(1e4 + 1e4), rtol=1e-3)


def test_discovery_significance_is_the_best_cut():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 2, 4000)
  scores = rng.normal(size=4000) + 1.5 * y
  d = jax.jit(jp.discovery_significance)(y, scores)
  # Brute force over every cut that keeps at least 10 background examples.
  best = 0.0
  for t in np.unique(scores):
    sel = scores >= t
    tpr_, fpr_ = sel[y == 1].mean(), sel[y == 0].mean()
    if sel[y == 0].sum() >= 10:
      best = max(best, _asimov_reference(100 * tpr_, 1000 * fpr_, 50 * fpr_))
  np.testing.assert_allclose(d.significance, best, rtol=1e-4)
  sel = scores >= d.threshold
  np.testing.assert_allclose([d.tpr, d.fpr], [sel[y == 1].mean(), sel[y == 0].mean()], rtol=1e-6)
  # A useless classifier's best cut is no better than keeping everything by much.
  random = jp.discovery_significance(y, rng.normal(size=4000))
  assert random.significance < _asimov_reference(100, 1000, 50) * 1.6
