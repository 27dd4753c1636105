"""The SUSY features (Baldi et al. 2014) computed from the leptons and the MET.

So far the closed-form high-level features; MT2 and the super-razor variables are
still to come (issue 4).

Leptons are massless and given as ``(..., 3)`` arrays of ``(pT [GeV], eta, phi [rad])``;
the missing transverse momentum as ``(..., 2)`` of ``(magnitude [GeV], phi [rad])``.
Every function is pure and vectorised over the leading axes. Conventions follow
``SUSY_PHYSICS.md``, section 2; where it leaves a choice, the docstring says which.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxphys.physics.kinematics import delta_phi, from_pt_eta_phi

__all__ = ["met_rel", "axial_met", "razor_mr", "razor_mtr", "razor_r"]


def _vec2(pt, phi):
  return jnp.stack([pt * jnp.cos(phi), pt * jnp.sin(phi)], -1)


def met_rel(lep1, lep2, met):
  """MET_rel: MET * sin(dphi_min) if the nearest lepton is within pi/2 in azimuth, else MET. ``(...)`` GeV."""
  dphi = jnp.minimum(jnp.abs(delta_phi(met[..., 1], lep1[..., 2])),
                     jnp.abs(delta_phi(met[..., 1], lep2[..., 2])))
  return jnp.where(dphi < jnp.pi / 2, met[..., 0] * jnp.sin(dphi), met[..., 0])


def axial_met(lep1, lep2, met):
  """Axial MET: -MET cos(dphi(pT_ll, MET)); positive when the MET opposes the dilepton
  system (the sign convention of SUSY_PHYSICS.md, not confirmed by the paper). ``(...)`` GeV."""
  pll = _vec2(lep1[..., 0], lep1[..., 2]) + _vec2(lep2[..., 0], lep2[..., 2])
  phi_ll = jnp.arctan2(pll[..., 1], pll[..., 0])
  return -met[..., 0] * jnp.cos(delta_phi(phi_ll, met[..., 1]))


def razor_mr(lep1, lep2):
  """Razor mass M_R = sqrt((|p1| + |p2|)^2 - (pz1 + pz2)^2). ``(...)`` GeV."""
  p1 = from_pt_eta_phi(lep1[..., 0], lep1[..., 1], lep1[..., 2])
  p2 = from_pt_eta_phi(lep2[..., 0], lep2[..., 1], lep2[..., 2])
  m2 = (p1[..., 0] + p2[..., 0]) ** 2 - (p1[..., 3] + p2[..., 3]) ** 2
  return jnp.sqrt(jnp.maximum(m2, 0.0))


def razor_mtr(lep1, lep2, met):
  """Razor transverse mass M_T^R = sqrt((MET (pT1 + pT2) - MET . (pT1 + pT2)) / 2). ``(...)`` GeV."""
  pt_sum = _vec2(lep1[..., 0], lep1[..., 2]) + _vec2(lep2[..., 0], lep2[..., 2])
  m = _vec2(met[..., 0], met[..., 1])
  v = met[..., 0] * (lep1[..., 0] + lep2[..., 0]) - jnp.sum(m * pt_sum, -1)
  return jnp.sqrt(jnp.maximum(v, 0.0) / 2)


def razor_r(lep1, lep2, met):
  """Razor ratio R = M_T^R / M_R, dimensionless ``(...)``."""
  return razor_mtr(lep1, lep2, met) / razor_mr(lep1, lep2)
