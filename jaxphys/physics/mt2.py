r"""The stransverse mass MT2 for massless visible and invisible particles.

.. math::
   M_{T2} = \min_{q_1 + q_2 = \not p_T} \max\big(m_T(p_1, q_1),\, m_T(p_2, q_2)\big),
   \qquad m_T(a, q)^2 = 2(|a||q| - a\cdot q).

MT2 <= mu exactly when the convex regions :math:`P_1 = \{q: m_T(p_1, q) \le \mu\}` and
:math:`P_2 = \{q: m_T(p_2, \not p_T - q) \le \mu\}` intersect (Cheng & Han 2008; Lester &
Nachman 2014 bisect on mu with a conic-intersection test). Both regions are parabolas:
:math:`P_1` has its focus at 0, opens along :math:`p_1`, and its support function is
:math:`h_1(n) = \mu^2 / (4 (-n\cdot p_1))` for unit :math:`n` with :math:`n\cdot p_1 < 0`
(infinite otherwise); :math:`P_2` is the same about the focus :math:`\not p_T` opening along
:math:`-p_2`. Two closed convex sets are disjoint exactly when a direction separates them,
:math:`h_1(n) + h_2(-n) < 0`, which gives MT2 as a one-dimensional maximum over the
direction :math:`n` of a separating line (derived here; the bisection is on the angle
rather than on mu):

.. math::
   M_{T2}^2 = 4 \max\Big(0, \sup_{n} \frac{(n\cdot \not p_T)\, A B}{A + B}\Big),
   \quad A = -n\cdot p_1 > 0,\ B = -n\cdot p_2 > 0.

On the arc where :math:`A, B, n\cdot\not p_T > 0` the objective is log-concave
(:math:`\log(n\cdot\not p_T)` is concave and :math:`AB/(A+B) = 1/(1/A + 1/B)` with
:math:`1/A, 1/B` log-convex), so the maximum is found by bisection on the sign of its
derivative with a fixed number of steps; it is zero when the arc is empty, i.e. when the
MET lies in the cone :math:`\{s p_1 + t p_2: s, t \ge 0\}`. Without upstream momentum
(:math:`\not p_T = -(p_1 + p_2)`) it reduces to :math:`2(|p_1||p_2| + p_1\cdot p_2)`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxphys.physics.kinematics import wrap_angle

__all__ = ["mt2", "transverse_mass"]


def transverse_mass(a, q):
  """``m_T`` of two massless transverse vectors ``(..., 2)`` (GeV) -> ``(...)`` GeV."""
  m2 = 2 * (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(q, axis=-1) - jnp.sum(a * q, -1))
  return jnp.sqrt(jnp.maximum(m2, 0.0))


def _dot(u, v):
  return u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1]


def mt2(p1, p2, met, iterations: int = 24):
  """MT2 with zero test mass, for massless visible particles.

  Args:
    p1, p2: visible transverse momenta ``(..., 2)`` as ``(px, py)``, GeV.
    met: missing transverse momentum ``(..., 2)`` as ``(px, py)``, GeV.
    iterations: bisection steps on the direction angle (each halves an arc of at
      most pi; 24 reach float32 resolution).

  Returns:
    MT2 ``(...)`` in GeV. Broadcasts over the leading axes; jit- and vmap-able.
  """
  dtype = jnp.promote_types(jnp.result_type(p1, p2, met), jnp.float32)
  p1, p2, met = (jnp.asarray(v, dtype) for v in (p1, p2, met))
  half = jnp.pi / 2
  # Angles of the three half-circles n.p1 < 0, n.p2 < 0, n.met > 0, relative to the first.
  c1 = jnp.arctan2(p1[..., 1], p1[..., 0]) + jnp.pi
  d2 = wrap_angle(jnp.arctan2(p2[..., 1], p2[..., 0]) + jnp.pi - c1)
  d3 = wrap_angle(jnp.arctan2(met[..., 1], met[..., 0]) - c1)
  lo = jnp.maximum(jnp.maximum(-half, d2 - half), d3 - half)
  hi = jnp.minimum(jnp.minimum(half, d2 + half), d3 + half)

  def terms(t):
    n = jnp.stack([jnp.cos(c1 + t), jnp.sin(c1 + t)], -1)
    dn = jnp.stack([-n[..., 1], n[..., 0]], -1)  # d n / d theta
    return (_dot(n, met), _dot(dn, met), -_dot(n, p1), -_dot(n, p2),
            -_dot(dn, p1), -_dot(dn, p2))

  def step(_, bounds):
    a, b = bounds
    mid = 0.5 * (a + b)
    m, dm, pa, pb, dpa, dpb = terms(mid)
    # sign of d/dtheta log(m A B / (A + B)), times the positive m A B (A + B).
    rising = dm * pa * pb * (pa + pb) + m * (dpa * pb * pb + dpb * pa * pa) > 0
    return jnp.where(rising, mid, a), jnp.where(rising, b, mid)

  a, b = jax.lax.fori_loop(0, iterations, step, (lo, hi))
  m, _, pa, pb, _, _ = terms(0.5 * (a + b))
  f = m * pa * pb / jnp.maximum(pa + pb, jnp.finfo(pa.dtype).tiny)
  return jnp.where(hi > lo, 2 * jnp.sqrt(jnp.maximum(f, 0.0)), 0.0)
