"""The 18 SUSY features (Baldi et al. 2014) computed from the leptons and the MET.

Leptons are massless and given as ``(..., 3)`` arrays of ``(pT [GeV], eta, phi [rad])``;
the missing transverse momentum as ``(..., 2)`` of ``(magnitude [GeV], phi [rad])``.
Jets, where a function takes them, are ``(..., J, 3)`` arrays of ``(pT, eta, phi)`` with
pT 0 in empty slots. Every function is pure and vectorised over the leading axes.
Definitions and sign conventions follow Baldi, Sadowski & Whiteson 2014 ("the paper")
and the papers it cites; each docstring names its source, and
``docs/physics/reference.md`` collects them.
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxphys.physics._trig import arctan2, sincos
from jaxphys.physics.kinematics import _cosh_sinh, _sum, boost, delta_phi, from_pt_eta_phi
from jaxphys.physics.mt2 import mt2

__all__ = ["met_rel", "axial_met", "razor_mr", "razor_mtr", "razor_r", "super_razor",
           "susy_features"]


def _vec2(pt, phi):
  sin, cos = sincos(phi)
  return jnp.stack([pt * cos, pt * sin], -1)


def met_rel(lep1: ArrayLike, lep2: ArrayLike, met: ArrayLike,
            jets: Optional[ArrayLike] = None) -> jnp.ndarray:
  """MET_rel ``(...)`` GeV: ``MET sin(dphi_min)`` if ``dphi_min < pi/2``, else ``MET``.

  ``dphi_min`` is the smallest azimuthal distance between the MET and any lepton or jet
  (the paper's definition; jets with pT 0 are empty slots and ignored). Without ``jets``,
  the leptons only.

  >>> lep = jnp.array([50.0, 0.0, 0.0]); met = jnp.array([40.0, jnp.pi / 6])
  >>> round(float(met_rel(lep, lep, met)), 3)
  20.0
  >>> round(float(met_rel(lep, lep, met, jnp.array([[30.0, 1.0, jnp.pi / 6]]))), 3)
  0.0
  """
  dphi = jnp.minimum(jnp.abs(delta_phi(met[..., 1], lep1[..., 2])),
                     jnp.abs(delta_phi(met[..., 1], lep2[..., 2])))
  if jets is not None:
    d_jet = jnp.abs(delta_phi(met[..., 1:2], jets[..., 2]))
    d_jet = jnp.where(jets[..., 0] > 0, d_jet, jnp.pi)
    for i in range(d_jet.shape[-1]):  # unrolled: see kinematics._sum
      dphi = jnp.minimum(dphi, d_jet[..., i])
  return jnp.where(dphi < jnp.pi / 2, met[..., 0] * sincos(dphi)[0], met[..., 0])


def axial_met(lep1: ArrayLike, lep2: ArrayLike, met: ArrayLike) -> jnp.ndarray:
  """Axial MET ``(...)`` GeV: ``MET cos(dphi(pT_ll, MET))``, the MET component along the
  dilepton transverse momentum.

  The paper: the MET "along the vector defined by the charged leptons"; its Fig. 6b has
  negative modes, i.e. the MET mostly opposes the dilepton system (as two W's recoiling
  against little radiation give), which fixes this sign.

  >>> lep = jnp.array([50.0, 0.0, 0.0])
  >>> float(axial_met(lep, lep, jnp.array([30.0, jnp.pi])))
  -30.0
  """
  pll = _vec2(lep1[..., 0], lep1[..., 2]) + _vec2(lep2[..., 0], lep2[..., 2])
  phi_ll = arctan2(pll[..., 1], pll[..., 0])
  return met[..., 0] * sincos(phi_ll - met[..., 1])[1]


def razor_mr(lep1: ArrayLike, lep2: ArrayLike) -> jnp.ndarray:
  """Razor mass M_R = sqrt((|p1| + |p2|)^2 - (pz1 + pz2)^2) (Rogan 2010). ``(...)`` GeV.

  >>> float(razor_mr(jnp.array([40.0, 0.0, 0.0]), jnp.array([40.0, 0.0, jnp.pi])))
  80.0
  """
  p1 = from_pt_eta_phi(lep1[..., 0], lep1[..., 1], lep1[..., 2])
  p2 = from_pt_eta_phi(lep2[..., 0], lep2[..., 1], lep2[..., 2])
  m2 = (p1[..., 0] + p2[..., 0]) ** 2 - (p1[..., 3] + p2[..., 3]) ** 2
  return jnp.sqrt(jnp.maximum(m2, 0.0))


def razor_mtr(lep1: ArrayLike, lep2: ArrayLike, met: ArrayLike) -> jnp.ndarray:
  """Razor transverse mass M_T^R = sqrt((MET (pT1 + pT2) - MET . (pT1 + pT2)) / 2)
  (Rogan 2010). ``(...)`` GeV.

  >>> lep1, lep2 = jnp.array([40.0, 0.0, 0.0]), jnp.array([40.0, 0.0, jnp.pi])
  >>> round(float(razor_mtr(lep1, lep2, jnp.array([10.0, 0.3]))), 3)
  20.0
  """
  pt_sum = _vec2(lep1[..., 0], lep1[..., 2]) + _vec2(lep2[..., 0], lep2[..., 2])
  m = _vec2(met[..., 0], met[..., 1])
  v = met[..., 0] * (lep1[..., 0] + lep2[..., 0]) - _sum(m * pt_sum, -1)
  return jnp.sqrt(jnp.maximum(v, 0.0) / 2)


def razor_r(lep1: ArrayLike, lep2: ArrayLike, met: ArrayLike) -> jnp.ndarray:
  """Razor ratio R = M_T^R / M_R, dimensionless ``(...)``.

  >>> lep1, lep2 = jnp.array([40.0, 0.0, 0.0]), jnp.array([40.0, 0.0, jnp.pi])
  >>> round(float(razor_r(lep1, lep2, jnp.array([10.0, 0.3]))), 3)
  0.25
  """
  return razor_mtr(lep1, lep2, met) / razor_mr(lep1, lep2)


def super_razor(lep1: ArrayLike, lep2: ArrayLike, met: ArrayLike) -> tuple:
  """The super-razor variables (Buckley, Lykken, Rogan & Spiropulu 2013; Rogan 2010).

  The chain of approximate rest frames of ``docs/physics/reference.md``, in forms free of
  cancellations: the longitudinal boost to the dilepton rest frame in z is a shift of
  both pseudorapidities by the dilepton rapidity, and with the massless leptons' R-frame
  energies E1, E2 and momenta p1, p2, ``M_Delta_R = 2 E1' = sqrt(E1 E2) |p1/E1 + p2/E2|``
  and ``cos_theta_r1 = (E1 - E2) / |p1 - p2|`` (both derived from the boost by beta_R1;
  the explicit boost loses float32 precision when its gamma is large).

  Signs: ``dPhi_r_b`` is signed, ``phi(p_ll in the R frame) - phi(beta_R)`` wrapped to
  ``[-pi, pi)``, as the paper's Fig. 6 plots it on ``[-pi, pi]``; ``cos_theta_r1`` is
  signed, as in the super-razor reference code (C. Rogan's ``superRazor``; the paper
  shows no figure of it).

  Returns:
    ``(S_R, M_Delta_R, dPhi_r_b, cos_theta_r1)``, each ``(...)``: GeV, GeV, radians in
    ``[-pi, pi)``, and ``cos`` in ``[-1, 1]``.

  >>> lep1, lep2 = jnp.array([60.0, 0.3, 0.0]), jnp.array([40.0, -0.5, 2.0])
  >>> s_r, m_delta, dphi, cos = super_razor(lep1, lep2, jnp.array([50.0, -2.5]))
  >>> bool(s_r > m_delta > 0), bool(-1 <= cos <= 1)
  (True, True)
  """
  pt1, eta1, phi1 = lep1[..., 0], lep1[..., 1], lep1[..., 2]
  pt2, eta2, phi2 = lep2[..., 0], lep2[..., 1], lep2[..., 2]
  # 1. Dilepton rapidity y = atanh(beta_z) from E +- pz = pT e^(+-eta), each a sum of
  # positive terms.
  e1, e2 = jnp.exp(eta1), jnp.exp(eta2)
  y = 0.5 * jnp.log((pt1 * e1 + pt2 * e2) / (pt1 / e1 + pt2 / e2))
  q1 = from_pt_eta_phi(pt1, eta1 - y, phi1)
  q2 = from_pt_eta_phi(pt2, eta2 - y, phi2)
  e_ll = q1[..., 0] + q2[..., 0]
  p_ll = q1[..., 1:3] + q2[..., 1:3]
  m2_ll = 2 * pt1 * pt2 * (_cosh_sinh(eta1 - eta2)[0] - sincos(phi1 - phi2)[1])
  # 2-3. pT_CM and s_R = (E_ll + E_inv)^2 - |pT_CM|^2 with E_inv = sqrt(m_ll^2 + MET^2).
  met_vec = _vec2(met[..., 0], met[..., 1])
  pt_cm = p_ll + met_vec
  e_inv = jnp.sqrt(m2_ll + met[..., 0] ** 2)
  s_r = jnp.maximum(2 * (m2_ll - _sum(p_ll * met_vec, -1) + e_ll * e_inv), 0.0)
  # 4. Transverse boost into the R frame.
  beta_r = pt_cm / jnp.sqrt(_sum(pt_cm ** 2, -1, keepdims=True) + s_r[..., None])
  beta_r3 = jnp.concatenate([beta_r, jnp.zeros_like(beta_r[..., :1])], -1)
  r1, r2 = boost(q1, beta_r3), boost(q2, beta_r3)
  # 5. Azimuth between the dilepton system in the R frame and the boost.
  pll_r = r1[..., 1:3] + r2[..., 1:3]
  dphi = delta_phi(arctan2(pll_r[..., 1], pll_r[..., 0]), arctan2(beta_r[..., 1], beta_r[..., 0]))
  # 6-7. Both leptons have energy M_Delta_R / 2 in their approximate parent frames.
  u1, u2 = r1[..., 1:] / r1[..., :1], r2[..., 1:] / r2[..., :1]
  m_delta = jnp.sqrt(r1[..., 0] * r2[..., 0]) * jnp.sqrt(_sum((u1 + u2) ** 2, -1))
  # 8. Lepton 1 seen from the frame moving with beta_R1 = (p1 - p2) / (E1 + E2): the
  # boost's component along beta_R1 simplifies to cos = (E1 - E2) / |p1 - p2| (no gamma).
  cos = (r1[..., 0] - r2[..., 0]) / jnp.sqrt(_sum((r1[..., 1:] - r2[..., 1:]) ** 2, -1))
  cos = jnp.clip(cos, -1.0, 1.0)
  return jnp.sqrt(s_r), m_delta, dphi, cos


def susy_features(lep1: ArrayLike, lep2: ArrayLike, met: ArrayLike,
                  jets: Optional[ArrayLike] = None) -> jnp.ndarray:
  """The 18 features of the UCI SUSY file, in file order (``jaxphys.data.SUSY_COLUMNS``).

  Args:
    lep1, lep2: ``(..., 3)`` leptons as ``(pT [GeV], eta, phi [rad])``, lepton 1 leading.
    met: ``(..., 2)`` missing transverse momentum as ``(magnitude [GeV], phi [rad])``.
    jets: optional ``(..., J, 3)`` jets as ``(pT, eta, phi)`` (pT 0: an empty slot); only
      MET_rel uses them (the paper's definition takes leptons and jets).

  Returns:
    ``(..., 18)``: the 8 inputs, then MET_rel, axial MET, M_R, M_TR_2, R, MT2, S_R,
    M_Delta_R, dPhi_r_b, cos_theta_r1, in GeV and radians (not the file's rescaled units).

  >>> f = susy_features(jnp.array([60.0, 0.3, 0.0]), jnp.array([40.0, -0.5, 2.0]),
  ...                   jnp.array([50.0, -2.5]))
  >>> f.shape
  (18,)
  """
  mt2_value = mt2(_vec2(lep1[..., 0], lep1[..., 2]), _vec2(lep2[..., 0], lep2[..., 2]),
                  _vec2(met[..., 0], met[..., 1]))
  mtr, mr = razor_mtr(lep1, lep2, met), razor_mr(lep1, lep2)
  high = [met_rel(lep1, lep2, met, jets), axial_met(lep1, lep2, met), mr, mtr, mtr / mr,
          mt2_value, *super_razor(lep1, lep2, met)]
  return jnp.concatenate([lep1, lep2, met, jnp.stack(high, -1)], -1)
