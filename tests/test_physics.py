"""Kinematics and the 18 SUSY features: closed forms, references and invariances."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from scipy.optimize import minimize

from jaxphys.data import SUSY_COLUMNS
from jaxphys.physics._trig import arctan2, sincos
from jaxphys.physics import (axial_met, boost, from_pt_eta_phi, invariant_mass, met_rel, mt2,
                             razor_mr, razor_mtr, razor_r, super_razor, susy_features,
                             to_pt_eta_phi)


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


def _rotate(v, angle):
  return np.concatenate([v[..., :-1], (v[..., -1:] + angle + np.pi) % (2 * np.pi) - np.pi], -1)


def test_all_features_are_invariant_under_a_common_azimuthal_rotation():
  lep1, lep2, met = _events(2000, 2)
  keep = [i for i, name in enumerate(SUSY_COLUMNS) if not name.endswith("phi")]
  assert len(keep) == 15
  f = np.asarray(susy_features(lep1, lep2, met))[:, keep]
  g = np.asarray(susy_features(_rotate(lep1, 1.1), _rotate(lep2, 1.1), _rotate(met, 1.1)))[:, keep]
  np.testing.assert_allclose(g, f, rtol=2e-4, atol=2e-3)


def test_all_features_are_invariant_under_a_longitudinal_boost():
  lep1, lep2, met = _events(2000, 3)
  shift = lambda v: v + np.array([0.0, 0.7, 0.0])  # a z boost shifts every (massless) eta
  keep = [i for i, name in enumerate(SUSY_COLUMNS) if not name.endswith("eta")]
  f = np.asarray(susy_features(lep1, lep2, met))[:, keep]
  g = np.asarray(susy_features(shift(lep1), shift(lep2), met))[:, keep]
  np.testing.assert_allclose(g, f, rtol=2e-4, atol=2e-3)
def test_feature_ranges():
  lep1, lep2, met = _events(2000, 4)
  f = _features(lep1, lep2, met)
  assert np.all((f[:, 1] >= 0) & (f[:, 1] <= f[:, 0] + 1e-4))  # 0 <= MET_rel <= MET
  assert np.all(np.abs(f[:, 2]) <= f[:, 0] + 1e-4)             # |axial MET| <= MET
  np.testing.assert_allclose(f[:, 5], f[:, 4] / f[:, 3], rtol=1e-5)


# --- MT2 ---------------------------------------------------------------------------------

def _mt(a, q):
  return np.sqrt(np.maximum(2 * (np.linalg.norm(a, axis=-1) * np.linalg.norm(q, axis=-1)
                                 - np.sum(a * q, -1)), 0.0))


def _mt2_brute_force(p1, p2, met, n=301):
  """Minimum of max(mT1, mT2) over a fine grid of splittings, polished by Nelder-Mead."""
  scale = 2 * (np.linalg.norm(p1) + np.linalg.norm(p2) + np.linalg.norm(met))
  g = np.linspace(-scale, scale, n)
  q = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
  f = np.maximum(_mt(p1, q), _mt(p2, met - q))
  objective = lambda x: max(_mt(p1, x), _mt(p2, met - x))
  best = min((minimize(objective, q[i], method="Nelder-Mead",
                       options=dict(xatol=1e-8, fatol=1e-9, maxiter=5000)).fun
              for i in np.argsort(f)[:4]))
  return min(best, f.min())


def test_mt2_matches_a_brute_force_minimisation():
  rng = np.random.default_rng(0)
  events = rng.normal(size=(24, 3, 2)) * 50.0
  events[::4, 1] = events[::4, 0] * rng.uniform(0.3, 2.0, (6, 1)) + rng.normal(size=(6, 2))  # near-collinear leptons
  got = np.asarray(jax.jit(mt2)(*jnp.asarray(events, jnp.float32).transpose(1, 0, 2)))
  want = np.array([_mt2_brute_force(*e) for e in events])
  assert np.sum(want > 1.0) >= 12  # most events are not in the trivial MT2 = 0 cone
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-3)


def test_mt2_bounds_symmetries_and_closed_forms():
  rng = np.random.default_rng(1)
  p1, p2, met = (rng.normal(size=(5000, 2)) * 40 for _ in range(3))
  value = np.asarray(mt2(p1, p2, met))
  # A minimum: no splitting does better, and the two "all on one side" splittings bound it.
  for _ in range(5):
    q = rng.normal(size=(5000, 2)) * 60
    assert np.all(value <= np.maximum(_mt(p1, q), _mt(p2, met - q)) * (1 + 1e-4) + 1e-3)
  assert np.all(value <= _mt(p1, met) * (1 + 1e-4) + 1e-3)  # q1 = met, q2 = 0
  assert np.all(value <= _mt(p2, met) * (1 + 1e-4) + 1e-3)  # q1 = 0, q2 = met
  # float32: near MT2 = 0 the square root amplifies rounding (about 1e-3 GeV at 50 GeV scales).
  np.testing.assert_allclose(mt2(p2, p1, met), value, rtol=1e-4, atol=5e-3)      # symmetric
  np.testing.assert_allclose(mt2(3 * p1, 3 * p2, 3 * met), 3 * value, rtol=1e-4, atol=1.5e-2)
  # No upstream momentum (met = -(p1 + p2)): MT2^2 = 2 (|p1||p2| + p1 . p2).
  closed = np.sqrt(2 * (np.linalg.norm(p1, axis=-1) * np.linalg.norm(p2, axis=-1) + np.sum(p1 * p2, -1)))
  np.testing.assert_allclose(mt2(p1, p2, -(p1 + p2)), closed, rtol=1e-4, atol=1e-3)
  # MET inside the cone of the leptons: the neutrinos can sit along them, MT2 = 0.
  s, t = rng.uniform(0.1, 3.0, (2, 5000, 1))
  np.testing.assert_allclose(mt2(p1, p2, s * p1 + t * p2), 0.0, atol=1e-6)
  chex.assert_shape(mt2(jnp.ones((3, 4, 2)), jnp.ones((4, 2)) * jnp.array([1.0, -1.0]), -jnp.ones(2)), (3, 4))


# --- Super-razor -------------------------------------------------------------------------

def _super_razor_reference(lep1, lep2, met):
  """The super-razor chain of docs/physics/reference.md step by step, float64 NumPy,
  explicit boosts; signed dPhi_r_b and cos_theta_r1."""
  def four(l):
    pt, eta, phi = l
    return np.array([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])

  def boost_np(p, b):
    g = 1 / np.sqrt(1 - b @ b)
    bp = b @ p[1:]
    return np.concatenate([[g * (p[0] - bp)], p[1:] + ((g - 1) * bp / (b @ b) - g * p[0]) * b])

  p1, p2 = four(lep1), four(lep2)
  bz = np.array([0, 0, (p1[3] + p2[3]) / (p1[0] + p2[0])])
  p1, p2 = boost_np(p1, bz), boost_np(p2, bz)
  e_ll, p_ll = p1[0] + p2[0], p1[1:3] + p2[1:3]
  met_vec = met[0] * np.array([np.cos(met[1]), np.sin(met[1])])
  pt_cm = p_ll + met_vec
  s_r = 2 * (e_ll ** 2 - p_ll @ pt_cm + e_ll * np.sqrt(e_ll ** 2 + pt_cm @ pt_cm - 2 * p_ll @ pt_cm))
  beta_r = np.append(pt_cm / np.sqrt(pt_cm @ pt_cm + s_r), 0.0)
  r1, r2 = boost_np(p1, beta_r), boost_np(p2, beta_r)
  pll_r = r1[1:3] + r2[1:3]
  dphi = (np.arctan2(pll_r[1], pll_r[0]) - np.arctan2(beta_r[1], beta_r[0]) + np.pi) % (2 * np.pi) - np.pi
  b1 = (r1[1:] - r2[1:]) / (r1[0] + r2[0])
  l1, l2 = boost_np(r1, b1), boost_np(r2, -b1)
  assert np.isclose(l1[0], l2[0], rtol=1e-9)  # equal energies in the two parent frames
  cos = (l1[1:] @ b1) / (np.linalg.norm(l1[1:]) * np.linalg.norm(b1))
  return np.array([np.sqrt(s_r), 2 * l1[0], dphi, cos])


def test_super_razor_matches_the_step_by_step_definition():
  lep1, lep2, met = _events(300, 5)
  got = np.stack(super_razor(lep1.astype(np.float32), lep2.astype(np.float32), met.astype(np.float32)), -1)
  want = np.array([_super_razor_reference(*e) for e in zip(lep1, lep2, met)])
  # dPhi_r_b is an angle: compare on the circle (-pi and pi are the same direction).
  got[:, 2] = want[:, 2] + (got[:, 2] - want[:, 2] + np.pi) % (2 * np.pi) - np.pi
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
  assert np.all((np.abs(got[:, 2]) <= np.pi + 1e-6) & (np.abs(got[:, 3]) <= 1))
  assert np.mean(want[:, 2] < 0) > 0.2 and np.mean(want[:, 3] < 0) > 0.1  # both signs occur


def test_susy_features_layout():
  lep1, lep2, met = _events(64, 6)
  f = np.asarray(jax.jit(susy_features)(lep1.reshape(8, 8, 3), lep2.reshape(8, 8, 3), met.reshape(8, 8, 2)))
  assert f.shape == (8, 8, len(SUSY_COLUMNS)) == (8, 8, 18)
  f = f.reshape(64, 18)
  np.testing.assert_allclose(f[:, :8], np.concatenate([lep1, lep2, met], -1), rtol=1e-6)
  np.testing.assert_allclose(f[:, 8:13], _features(lep1, lep2, met)[:, 1:], rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(f[:, 13], mt2(*(np.stack([v[:, 0] * np.cos(v[:, -1]), v[:, 0] * np.sin(v[:, -1])], -1)
                                             for v in (lep1, lep2, met))), rtol=1e-5, atol=1e-4)


def test_mt2_degenerate_configurations():
  p1 = jnp.array([[30.0, 0.0], [30.0, 0.0], [30.0, 0.0], [0.0, 25.0]])
  p2 = jnp.array([[-20.0, 0.0], [20.0, 0.0], [0.0, 10.0], [0.0, -25.0]])
  met = jnp.array([[0.0, 15.0], [-10.0, 0.0], [0.0, 0.0], [-30.0, 0.0]])
  got = np.asarray(mt2(p1, p2, met))
  assert np.all(np.isfinite(got))
  # Back-to-back leptons: the parabolas open the same way and always meet, MT2 = 0.
  assert got[0] == 0.0 and got[3] == 0.0
  # No MET: both invisible momenta zero, MT2 = 0.
  assert got[2] == 0.0
  # Parallel leptons with the MET opposite to them (the trigonometry-free arc bounds meet
  # the angle pi here): brute force.
  np.testing.assert_allclose(got[1], _mt2_brute_force(np.asarray(p1[1]), np.asarray(p2[1]), np.asarray(met[1])),
                             rtol=1e-4, atol=1e-3)


def test_polynomial_trigonometry_matches_numpy():
  x = np.random.default_rng(0).uniform(-100, 100, 200_000).astype(np.float32)
  x = np.concatenate([x, np.float32([0, -0.0, np.pi / 4, np.pi / 2, -np.pi, 3 * np.pi / 4])])
  sin, cos = jax.jit(sincos)(x)
  np.testing.assert_allclose(sin, np.sin(x.astype(np.float64)), rtol=0, atol=3e-7)
  np.testing.assert_allclose(cos, np.cos(x.astype(np.float64)), rtol=0, atol=3e-7)
  rng = np.random.default_rng(1)
  y, z = (rng.normal(size=(2, 200_000)) * 10.0 ** rng.uniform(-4, 4, (2, 200_000))).astype(np.float32)
  edges = np.float32([[0, 0], [-0.0, -1], [0, -1], [1, 0], [-1, 0], [1, 1], [-1, -1], [2, -2],
                      [np.inf, 1], [1, np.inf], [1, -np.inf]])
  y, z = np.concatenate([y, edges[:, 0]]), np.concatenate([z, edges[:, 1]])
  np.testing.assert_allclose(jax.jit(arctan2)(y, z), np.arctan2(y.astype(np.float64), z.astype(np.float64)),
                             rtol=0, atol=3e-7)


def test_met_rel_uses_leptons_and_jets():
  lep1, lep2, met = _events(500, 7)
  rng = np.random.default_rng(7)
  jets = np.stack([rng.uniform(20, 100, (500, 3)), rng.uniform(-3, 3, (500, 3)),
                   rng.uniform(-np.pi, np.pi, (500, 3))], -1)
  jets[::2, 1:, 0] = 0.0  # empty slots
  # Reference: the smallest |dphi| to any lepton or non-empty jet, in float64.
  phis = np.concatenate([lep1[:, 2:], lep2[:, 2:], np.where(jets[..., 0] > 0, jets[..., 2], np.nan)], 1)
  d = np.abs((met[:, 1:] - phis + np.pi) % (2 * np.pi) - np.pi)
  dmin = np.nanmin(d, 1)
  want = np.where(dmin < np.pi / 2, met[:, 0] * np.sin(dmin), met[:, 0])
  np.testing.assert_allclose(met_rel(lep1, lep2, met, jets), want, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(susy_features(lep1, lep2, met, jets)[:, 8], want, rtol=1e-5, atol=1e-4)
  # Without jets, the leptons only; jets can only lower MET_rel.
  no_jets = met_rel(lep1, lep2, met)
  assert np.all(np.asarray(met_rel(lep1, lep2, met, jets)) <= np.asarray(no_jets) + 1e-4)
  np.testing.assert_allclose(met_rel(lep1, lep2, met, jets * np.array([0.0, 1, 1])), no_jets, rtol=1e-6)


def test_axial_met_is_the_met_component_along_the_dileptons():
  lep1, lep2, met = _events(500, 8)
  v = lambda a: a[:, :1] * np.stack([np.cos(a[:, -1]), np.sin(a[:, -1])], -1)
  pll = v(lep1) + v(lep2)
  want = np.sum(v(met) * pll, -1) / np.linalg.norm(pll, axis=-1)
  np.testing.assert_allclose(axial_met(lep1, lep2, met), want, rtol=1e-5, atol=1e-4)
