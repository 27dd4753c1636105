"""Edge cases found in review, each against scikit-learn or the eager path: half-precision
weights and zero weights under jit, thresholds given as JAX arrays, bfloat16 inputs, labels
outside the range under jit, working-point targets a weighted cut reaches exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

import jaxphys as jp


def _binary(seed, n):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  return y, (rng.normal(size=n) + y).astype(np.float32), rng.uniform(0.5, 1.5, n)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_weights_are_summed_in_float32_under_jit(dtype):
  # 5000 weights summed in bfloat16 gave precision 0.5 instead of 0.69.
  y, s, w = _binary(0, 5000)
  w = jnp.asarray(w, dtype)
  w64 = np.asarray(w, np.float64)
  for fn, ref in [(jp.roc_auc, skm.roc_auc_score(y, s, sample_weight=w64)),
                  (jp.precision, skm.precision_score(y, s >= 0.5, sample_weight=w64)),
                  (jp.accuracy, skm.accuracy_score(y, s >= 0.5, sample_weight=w64))]:
    got = jax.jit(lambda y, s, w: fn(y, s, sample_weight=w))(y, s, w)
    assert float(got) == pytest.approx(ref, rel=1e-5), fn.__name__
  wp = jax.jit(lambda y, s, w: jp.working_point(y, s, sample_weight=w, target_tpr=0.5))(y, s, w)
  assert float(wp.fpr) == pytest.approx(jp.working_point(y, s, sample_weight=w64, target_tpr=0.5).fpr,
                                        rel=1e-5)


def test_jitted_discovery_ignores_zero_weight_examples_like_the_eager_one():
  # The min_background rule counted zero-weight background examples under jit only.
  y = np.r_[np.ones(20), np.zeros(40)].astype(int)
  s = np.r_[np.linspace(0.5, 1, 20), np.linspace(0, 1, 40)]
  w = np.where((y == 0) & (s > 0.8), 0.0, 1.0)
  for min_background in (1, 5, 10):
    eager = jp.discovery_significance(y, s, sample_weight=w, min_background=min_background)
    jitted = jax.jit(lambda y, s, w: jp.discovery_significance(
        y, s, sample_weight=w, min_background=min_background))(y, s, w)
    assert float(jitted.threshold) == pytest.approx(eager.threshold, rel=1e-6)
    assert float(jitted.significance) == pytest.approx(eager.significance, rel=1e-5)


def test_a_threshold_given_as_a_jax_array_is_compared_in_the_scores_precision():
  # jnp.array(0.5) made the eager comparison run in float32: 0.49999999999 >= 0.5.
  y, s = [0, 1, 1, 1], np.array([0.1, 0.49999999999, 0.7, 0.2])
  for threshold in (jnp.array(0.5), jnp.float32(0.5), np.float32(0.5)):
    for fn, sk in [(jp.recall, skm.recall_score), (jp.accuracy, skm.accuracy_score)]:
      got = fn(y, s, threshold=threshold)
      assert isinstance(got, np.floating) and got == sk(y, s >= 0.5)
    d = jp.discovery_significance([0, 0, 1, 1], np.array([0.1, 0.49999999999, 0.6, 0.7]),
                                  threshold=threshold)
    assert d.fpr == 0.0 and d.significance == np.inf


def test_threshold_must_be_a_scalar():
  with pytest.raises(ValueError, match=r"^threshold: expected a scalar, got shape \(2,\)$"):
    jp.precision([0, 1], [0.2, 0.8], threshold=np.array([0.5, 0.5]))
  with pytest.raises(ValueError, match=r"^threshold: expected a scalar"):
    jax.jit(lambda t: jp.precision(jnp.array([0, 1]), jnp.array([0.2, 0.8]), threshold=t))(
        jnp.array([0.5, 0.5]))
  with pytest.raises(ValueError, match=r"^threshold: expected a scalar"):
    jp.discovery_significance([0, 1], [0.2, 0.8], threshold=[0.5], min_background=0)


def test_bfloat16_inputs_are_accepted_eagerly():
  y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
  s = jnp.asarray([0.1, 0.9, 0.35, 0.8, 0.35, 0.2, 0.6, 0.7], jnp.bfloat16)
  s64 = np.asarray(s, np.float64)
  w = jnp.asarray([1, 2, 0.5, 1, 1, 0, 1, 3], jnp.bfloat16)
  w64 = np.asarray(w, np.float64)
  assert jp.roc_auc(y, s, sample_weight=w) == skm.roc_auc_score(y, s64, sample_weight=w64)
  assert jp.f1(y, s, sample_weight=w) == skm.f1_score(y, s64 >= 0.5, sample_weight=w64)
  fpr, tpr, thr = jp.roc_curve(jnp.asarray(y, jnp.bfloat16), s)
  ref = skm.roc_curve(y, s64)
  np.testing.assert_array_equal(fpr, ref[0])
  np.testing.assert_array_equal(thr.astype(np.float64), ref[2])
  wp = jp.working_point(y, s, target_tpr=0.5)
  assert np.mean(s64[y == 1] >= wp.threshold) == wp.tpr
  assert jp.accuracy(jnp.asarray([0, 2], jnp.bfloat16), np.eye(3)[[0, 2]]) == 1.0


def test_labels_outside_the_range_are_dropped_under_jit():
  # A label of -1 was counted as the last class under jit (the docstring says dropped).
  cm = jax.jit(lambda y, p: jp.confusion_matrix(y, p, 3))(jnp.array([-1, 0, 1, 3]),
                                                         jnp.array([0, 0, 1, -1]))
  np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
  scores = jnp.eye(3)[jnp.array([0, 0, 1])]
  got = jax.jit(lambda y, s: jp.recall(y, s, average=None))(jnp.array([-1, 0, 1]), scores)
  np.testing.assert_allclose(got, [1.0, 1.0, 0.0])


def test_classes_must_be_integers():
  with pytest.raises(ValueError, match=r"^classes: must be class indices in \[0, 3\)"):
    jp.precision([0, 1, 2], np.eye(3), average="macro", classes=[0.5, 1])


@pytest.mark.parametrize("weight", [0.1, 0.3, 1.0, 7.3])
def test_working_point_reaches_a_target_that_equal_weights_reach_exactly(weight):
  # Ten negatives of weight 0.1: cumulative sums gave FPR 0.30000000000000004 for three,
  # so target_fpr=0.3 chose the cut keeping two (FPR 0.2); unweighted it keeps three.
  y = np.r_[np.zeros(10), np.ones(10)].astype(int)
  s = np.r_[np.arange(10), np.arange(10) + 5].astype(np.float64)
  w = np.full(20, weight)
  for target in np.arange(1, 10) / 10:
    for name, rate in (("target_fpr", 1), ("target_tpr", 0)):
      plain = jp.working_point(y, s, **{name: target})
      weighted = jp.working_point(y, s, sample_weight=w, **{name: target})
      assert weighted.threshold == plain.threshold, (name, target)
      assert weighted[rate + 1] == pytest.approx(target, rel=1e-12)
      jitted = jax.jit(lambda y, s, w: jp.working_point(y, s, sample_weight=w, **{name: target}))(
          y, s, w)
      assert float(jitted.threshold) == plain.threshold, (name, target)
