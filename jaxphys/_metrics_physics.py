"""Discovery significance of a cut (private; see :mod:`jaxphys.metrics`)."""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxphys import _metrics_inputs as _in
from jaxphys import _metrics_ranking as _rank

PosLabel = Union[int, float, str, None]  # the positive class: any label value; None: 1

# Taylor coefficients of g(x) / x^2 = sum_m (-x)^m / ((m + 1)(m + 2)), for 0 <= x < 1/2:
# 48 terms reach float64 rounding there.
_SERIES = tuple(1.0 / ((m + 1) * (m + 2)) for m in range(48))


def _asimov(s, b, r2, xp):
  # With u = s/b, k = r2 b (= sigma_b^2 / b) and q = k / (1 + k), Cowan et al.'s Z^2 / (2 b)
  # is D = g(u) - g(qu)/q, g(x) = (1 + x) log1p(x) - x. Both differences cancel (s << b;
  # q -> 1 when sigma_b^2 >> b), so D is evaluated without them, with p = 1 - q = 1/(1+k):
  # u < 1/2: D = p u^2 sum_m c_m (-u)^m (1 + q + ... + q^m), g's series term by term;
  # u >= 1/2: D = (1 + u) log1p(p u / (1 + q u)) - (p / q) log1p(q u)   (g(u) for q = 0).
  u = s / b
  k = r2 * b
  q, p = k / (1 + k), 1 / (1 + k)
  small = u < 0.5
  us = xp.where(small, u, 0.0)
  acc, power, geometric = _SERIES[0] + 0 * us, 1 + 0 * us, 1 + 0 * us
  for c in _SERIES[1:]:
    power, geometric = -us * power, 1 + q * geometric
    acc = acc + c * power * geometric
  ul, qs = xp.where(small, 1.0, u), xp.where(q > 0, q, 1.0)
  large = xp.where(q > 0, (1 + ul) * xp.log1p(p * ul / (1 + q * ul)) - p / qs * xp.log1p(q * ul),
                   (1 + ul) * xp.log1p(ul) - ul)
  d = xp.where(small, p * us * us * acc, large)
  return xp.sqrt(xp.maximum(2 * b * d, 0.0))


def asimov_significance(s: jax.typing.ArrayLike, b: jax.typing.ArrayLike, relative_uncertainty: float = 0.0) -> jax.Array:
  r"""Expected discovery significance of ``s`` signal on ``b`` background events.

  The Asimov median significance of Cowan, Cranmer, Gross & Vitells (2011) with a
  background known to ``sigma_b = relative_uncertainty * b``:

  .. math::
     Z = \sqrt{2\Big[(s+b)\ln\frac{(s+b)(b+\sigma_b^2)}{b^2+(s+b)\sigma_b^2}
         - \frac{b^2}{\sigma_b^2}\ln\Big(1+\frac{\sigma_b^2 s}{b(b+\sigma_b^2)}\Big)\Big]},

  which is :math:`\sqrt{2((s+b)\ln(1+s/b) - s)}` for :math:`\sigma_b = 0` and
  :math:`s/\sqrt{b+\sigma_b^2}` for :math:`s \ll b`. Evaluated in a form without
  cancellation (:math:`Z^2/2b = g(u) - g(qu)/q` with :math:`g(x) = (1+x)\ln(1+x) - x`,
  :math:`u = s/b`, :math:`q = \sigma_b^2/(b + \sigma_b^2)`, rewritten so that neither
  :math:`s \ll b` nor :math:`\sigma_b^2 \gg b` cancels), accurate to a few roundings
  for any inputs.

  Args:
    s: signal events, ``>= 0``; b: background events, ``> 0`` (any shapes that
      broadcast); relative_uncertainty: ``>= 0``.

  Returns:
    Z in standard deviations: NumPy float64 for concrete inputs (checked), a JAX
    array in the inputs' float precision under jit (unchecked).

  >>> round(float(asimov_significance(100.0, 1000.0, 0.05)), 4)
  1.6443
  >>> float(asimov_significance(1e-3, 1e6)) * 1e6  # s / sqrt(b) for s << b
  0.9999999998333333
  """
  if _in.is_traced(s, b, relative_uncertainty):
    s, b = jnp.asarray(s), jnp.asarray(b)
    dtype = jnp.result_type(float, s.dtype, b.dtype)
    r2 = jnp.asarray(relative_uncertainty, dtype) ** 2
    return _asimov(s.astype(dtype), b.astype(dtype), r2, jnp)
  s, b = np.asarray(s, np.float64), np.asarray(b, np.float64)
  rel = np.asarray(relative_uncertainty, np.float64)
  if not np.all(np.isfinite(s) & (s >= 0)):
    _in._fail("s", "signal events must be finite and >= 0")
  if not np.all(np.isfinite(b) & (b > 0)):
    _in._fail("b", "background events must be finite and > 0")
  if not np.all(np.isfinite(rel) & (rel >= 0)):
    _in._fail("relative_uncertainty", "must be finite and >= 0")
  return _asimov(s, b, rel ** 2, np)[()]


class Discovery(NamedTuple):
  """A cut for a discovery: ``scores >= threshold``, efficiencies and Z there."""

  significance: jax.Array
  threshold: jax.Array
  tpr: jax.Array
  fpr: jax.Array


def _check_expectations(n_signal, n_background, relative_uncertainty, min_background):
  for name, value, low in (("n_signal", n_signal, 0.0), ("n_background", n_background, 0.0)):
    if not (np.isfinite(value) and value > low):
      _in._fail(name, f"must be a finite number > 0, got {value!r}")
  if not (np.isfinite(relative_uncertainty) and relative_uncertainty >= 0):
    _in._fail("relative_uncertainty", f"must be finite and >= 0, got {relative_uncertainty!r}")
  if int(min_background) != min_background or min_background < 0:
    _in._fail("min_background", f"must be an integer >= 0, got {min_background!r}")


def discovery_significance(labels: jax.Array, scores: jax.Array, n_signal: float = 100.0,
                           n_background: float = 1000.0, relative_uncertainty: float = 0.05,
                           min_background: int = 10, *, sample_weight: Optional[jax.Array] = None,
                           threshold: Optional[float] = None, pos_label: PosLabel = None) -> Discovery:
  """Expected significance of a cut on ``scores``: the best cut, or a given one.

  A cut with (weighted) signal efficiency ``tpr`` and background efficiency ``fpr``
  keeps ``s = n_signal * tpr`` and ``b = n_background * fpr`` events with background
  uncertainty ``relative_uncertainty * b``; Z is :func:`asimov_significance`. The
  default is the SUSY benchmark of Baldi et al. (2014): 100 signal events on 1000 +- 50
  background. Without ``threshold`` Z is maximised over the cuts, skipping those that
  keep fewer than ``min_background`` background examples (an efficiency that small is a
  fluke of the sample). With ``threshold`` it is Z at that cut, e.g. one chosen on
  validation data quoted on test data (``inf`` if the cut keeps no background).

  Args:
    labels: ``(n,)`` binary labels (0/1 or -1/1, or two values with ``pos_label``).
    scores: ``(n,)`` or ``(n, 1)`` finite real scores.
    sample_weight: ``(n,)`` per-example weights (weighted efficiencies; the
      ``min_background`` rule counts examples).
    threshold: a fixed cut ``scores >= threshold``.

  Returns:
    :class:`Discovery` of scalars (float64 eagerly, the threshold in the scores'
    dtype). Eagerly everything is checked; under jit only shapes (a missing class then
    gives NaN, no admissible cut ``-inf``).

  >>> d = discovery_significance([0] * 20 + [1] * 5, list(range(25)), min_background=1)
  >>> int(d.threshold), float(d.tpr), float(d.fpr)
  (19, 1.0, 0.05)
  >>> float(discovery_significance([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], threshold=0.5).tpr)
  0.5
  """
  if _in.is_traced(labels, scores, sample_weight, threshold):
    _in.check_shapes(labels, scores, sample_weight, binary=True)
    _in.check_threshold_shape(threshold)
    pos, s, w = _rank._traced_binary(labels, scores, sample_weight, pos_label)
    return _traced_discovery(pos, s, w, n_signal, n_background, relative_uncertainty,
                             min_background, threshold)
  _check_expectations(n_signal, n_background, relative_uncertainty, min_background)
  pos, s, w = _rank.host_binary(labels, scores, sample_weight, pos_label)
  if threshold is not None:
    threshold = _in.host_threshold(threshold)
    if not np.isfinite(threshold):
      _in._fail("threshold", f"must be a finite number, got {threshold!r}")
    ws = np.ones(s.shape[0]) if w is None else w
    sel, total_s, total_b = s >= threshold, ws[pos].sum(), ws[~pos].sum()
    if total_s <= 0 or total_b <= 0:
      _in._fail("labels", "both classes need positive weight for the efficiencies")
    tpr, fpr = ws[pos & sel].sum() / total_s, ws[~pos & sel].sum() / total_b
    if fpr <= 0:
      return Discovery(np.float64(np.inf), threshold, tpr, fpr)
    z = asimov_significance(n_signal * tpr, n_background * fpr, relative_uncertainty)
    return Discovery(z, threshold, tpr, fpr)
  c = _rank.host_curve(pos, s, w)
  fpr, tpr = _rank.host_rates(c, "the signal and background efficiencies")
  ok = (c.negatives >= min_background) & (fpr > 0)
  if not ok.any():
    _in._fail("min_background", f"no cut keeps {min_background} background examples")
  z = np.full(fpr.shape, -np.inf)
  z[ok] = asimov_significance(n_signal * tpr[ok], n_background * fpr[ok], relative_uncertainty)
  i = int(np.argmax(z))
  return Discovery(z[i], c.thr[i], tpr[i], fpr[i])


def _traced_discovery(pos, s, w, n_signal, n_background, rel, min_background, threshold):
  dtype = jnp.promote_types(jnp.float32, jnp.result_type(float, s.dtype if w is None else w.dtype))
  ws = jnp.ones(s.shape[0], dtype) if w is None else w.astype(dtype)
  total_s, total_b = jnp.sum(jnp.where(pos, ws, 0)), jnp.sum(jnp.where(pos, 0, ws))
  if threshold is not None:
    sel = s >= threshold
    tpr = jnp.sum(jnp.where(pos & sel, ws, 0)) / total_s
    fpr = jnp.sum(jnp.where(~pos & sel, ws, 0)) / total_b
    z = asimov_significance(n_signal * tpr, n_background * fpr, rel)
    return Discovery(jnp.where(fpr > 0, z, jnp.inf), jnp.asarray(threshold), tpr, fpr)
  fps, tps, thr, last, negatives = _rank._points(pos, s, w)
  tpr, fpr = tps / total_s, fps / total_b
  z = asimov_significance(n_signal * tpr, n_background * jnp.where(fpr > 0, fpr, 1.0), rel)
  z = jnp.where(last & (negatives >= min_background) & (fpr > 0), z, -jnp.inf)
  i = jnp.argmax(z)
  return Discovery(z[i], thr[i], tpr[i], fpr[i])
