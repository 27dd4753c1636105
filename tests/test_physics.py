"""Kinematics and the closed-form SUSY features: closed forms and invariances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxphys.physics import (axial_met, boost, from_pt_eta_phi, invariant_mass, met_rel, razor_mr,
                             razor_mtr, razor_r, to_pt_eta_phi)


def _events(n, seed):
  rng = np.random.default_rng(seed)
  lep = lambda: np.stack([rng.uniform(15, 150, n), rng.uniform(-2.5, 2.5, n), rng.uniform(-np.pi, np.pi, n)], -1)
  return lep(), lep(), np.stack([rng.uniform(5, 200, n), rng.uniform(-np.pi, np.pi, n)], -1)


def test_boosts():
  p = from_pt_eta_phi(jnp.array([30.0, 50.0]), jnp.array([0.5, -1.2]), jnp.array([0.3, 2.0]))
  beta = jnp.array([[0.2, -0.4, 0.5], [0.0, 0.0, -0.9]])
  q = boost(p, beta)
  np.testing.assert_allclose(invariant_mass(q), 0.0, atol=1e-3)
  np.testing.assert_allclose(boost(q, -beta), p, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(boost(p, jnp.zeros(3)), p, rtol=1e-6)
  # The pair's rest frame: boosting by its velocity leaves no momentum.
  pair = p[0] + p[1]
  rest = boost(pair, pair[1:] / pair[0])
  np.testing.assert_allclose(rest[1:], 0.0, atol=1e-3)
  np.testing.assert_allclose(rest[0], invariant_mass(pair), rtol=1e-5)
  pt, eta, phi = to_pt_eta_phi(p)
  np.testing.assert_allclose(np.stack([pt, eta, phi]), [[30, 50], [0.5, -1.2], [0.3, 2.0]], rtol=1e-5)


def test_razor_closed_forms():
  lep1 = jnp.array([[40.0, 0.0, 0.0]])
  lep2 = jnp.array([[40.0, 0.0, np.pi]])
  np.testing.assert_allclose(razor_mr(lep1, lep2), [80.0], rtol=1e-6)
  np.testing.assert_allclose(razor_mtr(lep1, lep2, jnp.array([[0.0, 1.0]])), [0.0], atol=1e-5)
  # MET anti-parallel to lepton 1 and parallel to lepton 2: (MET (80) - MET . (0)) / 2.
  np.testing.assert_allclose(razor_mtr(lep1, lep2, jnp.array([[10.0, 0.3]])), [np.sqrt(400.0)], rtol=1e-5)


def _features(lep1, lep2, met):
  """MET, MET_rel, axial MET, M_R, M_T^R, R: ``(n, 6)``."""
  return np.stack([met[:, 0], met_rel(lep1, lep2, met), axial_met(lep1, lep2, met),
                   razor_mr(lep1, lep2), razor_mtr(lep1, lep2, met), razor_r(lep1, lep2, met)], -1)


def test_features_are_invariant_under_a_common_azimuthal_rotation():
  lep1, lep2, met = _events(500, 2)
  rot = lambda v: np.concatenate([v[..., :-1], (v[..., -1:] + 1.1 + np.pi) % (2 * np.pi) - np.pi], -1)
  np.testing.assert_allclose(_features(rot(lep1), rot(lep2), rot(met)), _features(lep1, lep2, met),
                             rtol=1e-4, atol=1e-3)


def test_features_are_invariant_under_a_longitudinal_boost():
  lep1, lep2, met = _events(500, 3)
  shift = lambda v: v + np.array([0.0, 0.7, 0.0])  # a z boost shifts every (massless) eta
  np.testing.assert_allclose(_features(shift(lep1), shift(lep2), met), _features(lep1, lep2, met),
                             rtol=1e-4, atol=1e-3)


def test_feature_ranges():
  lep1, lep2, met = _events(2000, 4)
  f = _features(lep1, lep2, met)
  assert np.all((f[:, 1] >= 0) & (f[:, 1] <= f[:, 0] + 1e-4))  # 0 <= MET_rel <= MET
  assert np.all(np.abs(f[:, 2]) <= f[:, 0] + 1e-4)             # |axial MET| <= MET
  np.testing.assert_allclose(f[:, 5], f[:, 4] / f[:, 3], rtol=1e-5)
