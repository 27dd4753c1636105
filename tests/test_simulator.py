"""The SUSY event simulator: the physics checks of SUSY_PHYSICS.md, section 3."""

import jax
import numpy as np
import pytest

from jaxphys.data import SUSY_COLUMNS, load_susy, write_susy
from jaxphys.physics import SusyParams, simulate_susy, susy_features, uci_rescale
from jaxphys.physics.simulator import _breit_wigner, _direction, _permutation

COL = {name: i for i, name in enumerate(SUSY_COLUMNS)}
CHUNK = 1 << 14


@pytest.fixture(scope="module")
def truth_events():
  return simulate_susy(jax.random.key(0), 20_000, smear=False, chunk_size=CHUNK, return_truth=True)


@pytest.fixture(scope="module")
def smeared_events():
  return simulate_susy(jax.random.key(1), 20_000, chunk_size=CHUNK)


def test_shapes_labels_and_determinism(smeared_events):
  x, y = smeared_events
  assert x.shape == (20_000, 18) and x.dtype == np.float32 and y.dtype == np.int32
  assert y.sum() == round(0.458 * 20_000) and np.isfinite(x).all()
  assert 0 < np.mean(y[:100]) < 1  # classes are shuffled, not in blocks
  x2, y2 = simulate_susy(jax.random.key(1), 20_000, chunk_size=CHUNK)
  np.testing.assert_array_equal(x2, x)
  np.testing.assert_array_equal(y2, y)
  x3, _ = simulate_susy(jax.random.key(2), 20_000, chunk_size=CHUNK)
  assert not np.allclose(x3, x)


def test_features_are_those_of_the_measured_leptons_and_met(smeared_events):
  # The simulator computes features after the selection, in padded chunks: no row may
  # pick up another's numbers at a chunk boundary.
  x, _ = smeared_events
  assert len(x) % CHUNK != 0
  # (Tolerance: a different compilation rounds ill-conditioned values such as a small MT2.)
  np.testing.assert_allclose(x, susy_features(x[:, 0:3], x[:, 3:6], x[:, 6:8]), rtol=1e-3, atol=1e-3)


def test_shuffle_is_a_uniform_permutation():
  order = _permutation(jax.random.key(0), 100_000)
  np.testing.assert_array_equal(np.sort(order), np.arange(100_000))
  np.testing.assert_array_equal(_permutation(jax.random.key(0), 100_000), order)
  # Position of element 0 over many small permutations: uniform over 10 places.
  first = np.array([np.argmin(_permutation(jax.random.key(i), 10)) for i in range(2000)])
  counts = np.bincount(first, minlength=10)
  assert np.all(np.abs(counts - 200) < 5 * np.sqrt(200 * 0.9))


def test_selection_and_ordering(smeared_events):
  x, _ = smeared_events
  p = SusyParams()
  for lep in ("lepton_1", "lepton_2"):
    assert np.all(x[:, COL[f"{lep}_pT"]] > p.lepton_pt_min)
    assert np.all(np.abs(x[:, COL[f"{lep}_eta"]]) < p.lepton_eta_max)
  assert np.all(x[:, COL["lepton_1_pT"]] >= x[:, COL["lepton_2_pT"]])


def test_decays_reconstruct_the_parent_masses(truth_events):
  _, y, t = truth_events
  mass = lambda p: np.sqrt(np.abs(p[..., 0] ** 2 - np.sum(p[..., 1:] ** 2, -1)))  # float64 reference
  np.testing.assert_allclose(mass(t["leptons"].astype(np.float64) + t["neutrinos"]), t["w_mass"], rtol=2e-3)
  sig = y == 1
  chargino = mass(t["w"][sig].astype(np.float64) + t["neutralinos"][sig])
  np.testing.assert_allclose(chargino, SusyParams().m_chargino, rtol=2e-3)
  # Signal W masses stay below m(chargino) - m(neutralino); background follow the Breit-Wigner.
  assert np.all(t["w_mass"][sig] <= 100.0 + 1e-3)
  assert abs(np.median(t["w_mass"][~sig]) - 80.4) < 0.5


def test_transverse_momentum_balance(truth_events):
  _, _, t = truth_events
  visible = t["leptons"][..., 1:3].sum(1) + t["recoil"]
  invisible = (t["neutrinos"] + t["neutralinos"])[..., 1:3].sum(1)
  # float32 rounding in the boosts (gamma up to ~30) scales with the event's energy.
  energy = t["pair"][:, 0]
  assert np.all(np.abs(visible + invisible).max(1) <= 1e-4 * energy)
  assert np.median(np.abs(visible + invisible).max(1) / energy) < 1e-7
  # Without smearing the MET is exactly the invisible momentum.
  np.testing.assert_allclose(t["met"], invisible, rtol=1e-5, atol=1e-3)


def test_background_mt2_endpoint_is_the_w_mass(truth_events, smeared_events):
  x, y, t = truth_events
  bkg = y == 0
  mt2 = x[bkg, COL["MT2"]]
  assert np.all(mt2 <= t["w_mass"][bkg].max(1) * (1 + 1e-3) + 1e-2)
  assert np.quantile(mt2, 0.99) > 60.0  # the edge is populated, not trivially satisfied
  xs, ys = smeared_events
  assert np.mean(xs[ys == 0, COL["MT2"]] > 100.0) < 0.01  # with smearing, still near m_W


def test_signal_is_harder_than_background(smeared_events):
  x, y = smeared_events
  for name in ("missing_energy_magnitude", "MT2", "M_TR_2"):
    sig, bkg = x[y == 1, COL[name]], x[y == 0, COL[name]]
    assert np.quantile(sig, 0.9) > 1.1 * np.quantile(bkg, 0.9), name


def test_production_angle_and_breit_wigner_samplers():
  c = np.asarray(_direction(jax.random.key(3), (200_000,), "1+cos2"))[:, 2]
  assert abs(np.mean(c ** 2) - 0.4) < 0.005  # <c^2> = 2/5 for 1 + c^2
  iso = np.asarray(_direction(jax.random.key(3), (200_000,)))
  np.testing.assert_allclose(np.linalg.norm(iso, axis=-1), 1.0, rtol=1e-5)
  assert abs(np.mean(iso[:, 2] ** 2) - 1 / 3) < 0.005
  p = SusyParams()
  m = np.asarray(_breit_wigner(jax.random.key(4), (200_000,), p, 130.0))
  assert m.min() >= 50.0 - 1e-3 and m.max() <= 130.0 + 1e-3
  # Half of a Breit-Wigner lies within one half-width of the peak.
  assert abs(np.mean(np.abs(m - p.m_w) < p.gamma_w / 2) - 0.5) < 0.02


def test_uci_rescaling():
  x, _ = simulate_susy(jax.random.key(5), 5_000, chunk_size=CHUNK, rescale=True)
  eta = x[:, COL["lepton_1_eta"]]
  assert abs(eta.mean()) < 1e-3 and abs(eta.std() - 1) < 1e-3
  np.testing.assert_allclose(x[:, COL["MT2"]].mean(), 1.0, rtol=1e-4)
  cos = np.array([[0.2, 0.5], [0.4, 0.7]])
  np.testing.assert_array_equal(uci_rescale(cos), cos.astype(np.float32))  # in [0, 1]: unchanged


def test_simulated_events_round_trip_through_the_susy_file_format(tmp_path, smeared_events):
  x, y = smeared_events
  path = write_susy(tmp_path / "SUSY.csv.gz", x[:500], y[:500])
  x2, y2 = load_susy(path)
  np.testing.assert_allclose(x2, x[:500], rtol=1e-6)
  np.testing.assert_array_equal(y2, y[:500])


def test_bad_arguments():
  with pytest.raises(ValueError, match="signal_fraction"):
    simulate_susy(jax.random.key(0), 10, signal_fraction=1.5)
  with pytest.raises(ValueError, match="chunk_size"):
    simulate_susy(jax.random.key(0), 10, chunk_size=0)
  with pytest.raises(TypeError):
    simulate_susy(jax.random.key(0), 10, no_such_parameter=1.0)
  with pytest.raises(ValueError, match="production"):
    SusyParams(production="flat")
  with pytest.raises(ValueError, match="lepton_eta_max"):
    simulate_susy(jax.random.key(0), 10, chunk_size=256, lepton_eta_max=0.0)
