"""A fast toy simulator of the UCI SUSY events: chargino pairs against W+W- (GeV, radians).

Signal: ``p p -> chi+ chi-``, ``chi -> W chi0``, ``W -> l nu``; background:
``p p -> W+ W-``, ``W -> l nu``. It follows SUSY_PHYSICS.md, section 3, and is a toy of the
real MadGraph + Pythia + Delphes chain: no parton shower, no hadronisation, one lepton
flavour, a Gaussian detector. Modelling choices (each a field of :class:`SusyParams`):

1. Pair mass ``m = sqrt(s-hat)`` from ``dsigma/dm ~ beta(m) (1 - m/sqrt_s)^lumi_power / m^3``
   (a toy parton luminosity ``(1 - sqrt(tau))^lumi_power / tau`` times ``sigma-hat ~
   beta / s-hat``, with ``beta`` the velocity of the pair's daughters at the nominal
   masses), sampled by inverse CDF (tables on uniform grids, so a draw is a lookup, not a
   search), above the event's threshold. Pair rapidity: a Gaussian of width ``rapidity_width`` truncated to the range
   the momentum fractions allow, ``|y| < ln(sqrt_s / m)``. Production angle in the pair
   frame: ``1 + cos^2`` about the beam, or isotropic.
2. Initial-state radiation: the pair gets a transverse momentum drawn from an exponential
   of mean ``isr_pt_mean``, balanced by a hadronic recoil that the detector sees.
3. Two-body decays, isotropic in the parent's rest frame; W masses from a relativistic
   Breit-Wigner truncated to ``w_mass_window`` (and below ``m_chargino - m_neutralino``).
4. Detector: lepton pT smeared by ``lepton_pt_resolution`` (relative, Gaussian); eta and
   phi exact. MET = -(measured leptons + measured recoil), the recoil measured with a
   Gaussian ``met_resolution`` per component; without smearing MET is exactly the sum of
   the invisible momenta. Events need two leptons with ``|eta| < lepton_eta_max`` and
   ``pT > lepton_pt_min``; lepton 1 is the leading one.
5. Features: :func:`jaxphys.physics.susy_features`, optionally rescaled like the UCI file
   (:func:`uci_rescale`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxphys.physics._trig import arctan2, sincos
from jaxphys.physics.features import susy_features
from jaxphys.physics.kinematics import boost, to_pt_eta_phi

__all__ = ["SusyParams", "simulate_susy", "generate_events", "uci_rescale"]


@dataclasses.dataclass(frozen=True)
class SusyParams:
  """Physical constants and modelling choices of the simulator (GeV unless stated)."""
  sqrt_s: float = 8000.0              # collision energy
  m_chargino: float = 200.0
  m_neutralino: float = 100.0
  m_w: float = 80.4
  gamma_w: float = 2.1                # W width
  w_mass_window: tuple = (50.0, 130.0)  # Breit-Wigner truncation
  lumi_power: float = 10.0            # (1 - sqrt(tau))^p in the toy parton luminosity
  rapidity_width: float = 1.2         # Gaussian width of the pair rapidity (before truncation)
  production: str = "1+cos2"          # pair-frame polar angle: "1+cos2" or "isotropic"
  isr_pt_mean: float = 20.0           # mean of the exponential pair pT
  lepton_pt_resolution: float = 0.03  # relative
  met_resolution: float = 10.0        # per transverse component of the recoil
  lepton_pt_min: float = 10.0
  lepton_eta_max: float = 2.5
  grid_size: int = 8192               # points of the tabulated pair-mass CDF and its inverse

  def __post_init__(self):
    if self.production not in ("1+cos2", "isotropic"):
      raise ValueError(f"production must be '1+cos2' or 'isotropic', got {self.production!r}")
    if self.m_chargino - self.m_neutralino <= self.w_mass_window[0]:
      raise ValueError("m_chargino - m_neutralino must exceed the lower end of w_mass_window")


def _mass_tables(p: SusyParams, signal: bool):
  """The pair-mass CDF on a uniform grid of masses and its inverse on a uniform grid of
  probabilities, ``(m_lo, m_hi, cdf, inverse)`` (NumPy float64; both tables
  ``grid_size`` points, built from a 16x finer trapezoid integration)."""
  m_d = p.m_chargino if signal else p.m_w
  lo, hi = 2 * m_d, p.sqrt_s
  fine = np.linspace(lo, hi, 16 * p.grid_size)
  beta = np.sqrt(np.clip(1 - (lo / fine) ** 2, 0, None))
  density = beta * (1 - fine / hi) ** p.lumi_power / fine ** 3
  cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(fine))])
  cdf /= cdf[-1]
  table = np.interp(np.linspace(lo, hi, p.grid_size), fine, cdf)
  inverse = np.interp(np.linspace(0, 1, p.grid_size), cdf, fine)
  return lo, hi, table, inverse


def _lookup(x, x0, x1, table):
  """Linear interpolation in a table sampled uniformly on ``[x0, x1]`` (no search)."""
  pos = jnp.clip((x - x0) / (x1 - x0), 0.0, 1.0) * (table.shape[0] - 1)
  i = jnp.minimum(jnp.floor(pos).astype(jnp.int32), table.shape[0] - 2)
  frac = pos - i
  return table[i] * (1 - frac) + table[i + 1] * frac


def _sample_mass(key, p, signal, threshold):
  """Pair masses ``(n,)`` above the per-event ``threshold`` ``(n,)``: inverse CDF."""
  lo, hi, cdf, inverse = _mass_tables(p, signal)
  cdf, inverse = jnp.asarray(cdf, jnp.float32), jnp.asarray(inverse, jnp.float32)
  start = _lookup(threshold, lo, hi, cdf)
  u = start + jax.random.uniform(key, threshold.shape) * (1 - start)
  return jnp.maximum(_lookup(u, 0.0, 1.0, inverse), threshold * (1 + 1e-6))


def _breit_wigner(key, shape, p, upper):
  """Relativistic Breit-Wigner W masses in ``[w_mass_window[0], upper]`` (inverse CDF in m^2)."""
  mg = p.m_w * p.gamma_w
  lo = math.atan((p.w_mass_window[0] ** 2 - p.m_w ** 2) / mg)
  hi = math.atan((upper ** 2 - p.m_w ** 2) / mg)
  sin, cos = sincos(jax.random.uniform(key, shape, minval=lo, maxval=hi))
  return jnp.sqrt(p.m_w ** 2 + mg * sin / cos)


def _direction(key, shape, production="isotropic"):
  """Unit 3-vectors ``shape + (3,)``: isotropic, or polar angle ~ 1 + cos^2 about z."""
  k1, k2 = jax.random.split(key)
  u = jax.random.uniform(k1, shape)
  if production == "1+cos2":  # root of c^3 + 3c + 4 - 8u = 0 (the CDF of 1 + c^2)
    c = 2 * jnp.sinh(jnp.arcsinh(4 * u - 2) / 3)
  else:
    c = 2 * u - 1
  phi = jax.random.uniform(k2, shape, minval=-jnp.pi, maxval=jnp.pi)
  s = jnp.sqrt(jnp.maximum(1 - c * c, 0.0))
  sin, cos = sincos(phi)
  return jnp.stack([s * cos, s * sin, c], -1)


def _momentum(m, ma, mb):
  """Daughter momentum in a two-body decay ``m -> ma + mb`` (Kallen function)."""
  lam = (m * m - (ma + mb) ** 2) * (m * m - (ma - mb) ** 2)
  return jnp.sqrt(jnp.maximum(lam, 0.0)) / (2 * m)


def _two_body(key, parent, m, ma, mb, production="isotropic"):
  """Decay ``parent`` ``(..., 4)`` of mass ``m`` into masses ``ma``, ``mb``: lab four-vectors."""
  q = _momentum(m, ma, mb)[..., None] * _direction(key, m.shape, production)
  q2 = jnp.sum(q * q, -1)
  ea, eb = jnp.sqrt(ma * ma + q2)[..., None], jnp.sqrt(mb * mb + q2)[..., None]
  to_lab = -parent[..., 1:] / parent[..., :1]  # the lab moves with -beta seen from the parent
  return boost(jnp.concatenate([ea, q], -1), to_lab), boost(jnp.concatenate([eb, -q], -1), to_lab)


@functools.partial(jax.jit, static_argnames=("n", "signal", "smear", "p", "truth"))
def generate_events(key, n: int, signal: bool, p: SusyParams = SusyParams(), smear: bool = True,
                    truth: bool = True):
  """One batch of ``n`` events of one class, before the lepton selection.

  Returns a dict of arrays: ``inputs`` ``(n, 8)``, the measured leptons and MET as the
  first 8 columns of the SUSY file (GeV, radians; :func:`jaxphys.physics.susy_features`
  of its three parts gives all 18), ``accepted`` ``(n,)`` bool (the lepton selection),
  and with ``truth``: ``pair`` ``(n, 4)``, ``parents``,
  ``w``, ``leptons``, ``neutrinos``, ``neutralinos`` ``(n, 2, 4)`` (in W order; neutralinos
  zero for the background), ``w_mass`` ``(n, 2)``, ``recoil`` ``(n, 2)`` (px, py) and the
  reconstructed ``met`` ``(n, 2)`` (px, py).
  """
  keys = jax.random.split(key, 10)
  zeros = jnp.zeros((n, 2))
  if signal:
    m_parent = jnp.full((n, 2), p.m_chargino)
    w_mass = _breit_wigner(keys[0], (n, 2), p, min(p.w_mass_window[1], p.m_chargino - p.m_neutralino))
    threshold = jnp.full((n,), 2 * p.m_chargino)
  else:
    w_mass = _breit_wigner(keys[0], (n, 2), p, p.w_mass_window[1])
    m_parent = w_mass
    threshold = w_mass[:, 0] + w_mass[:, 1]
  m = _sample_mass(keys[1], p, signal, threshold)
  # Pair rapidity: truncated Gaussian, exact inverse CDF.
  y_max = jnp.log(p.sqrt_s / m)
  edge = jax.scipy.special.ndtr(-y_max / p.rapidity_width)
  y = p.rapidity_width * jax.scipy.special.ndtri(edge + jax.random.uniform(keys[2], (n,)) * (1 - 2 * edge))
  pt = jax.random.exponential(keys[3], (n,)) * p.isr_pt_mean
  phi = jax.random.uniform(keys[4], (n,), minval=-jnp.pi, maxval=jnp.pi)
  mt = jnp.sqrt(m * m + pt * pt)
  sin, cos = sincos(phi)
  pair = jnp.stack([mt * jnp.cosh(y), pt * cos, pt * sin, mt * jnp.sinh(y)], -1)
  a, b = _two_body(keys[5], pair, m, m_parent[:, 0], m_parent[:, 1], p.production)
  parents = jnp.stack([a, b], 1)
  if signal:
    w, chi0 = _two_body(keys[6], parents, m_parent, w_mass, jnp.full((n, 2), p.m_neutralino))
  else:
    w, chi0 = parents, jnp.zeros_like(parents)
  leptons, nus = _two_body(keys[7], w, w_mass, zeros, zeros)
  recoil = -pair[:, 1:3]
  invisible = jnp.sum(nus[..., 1:3] + chi0[..., 1:3], 1)
  # Detector.
  pt_l, eta_l, phi_l = to_pt_eta_phi(leptons)
  if smear:
    scale = jnp.maximum(1 + p.lepton_pt_resolution * jax.random.normal(keys[8], (n, 2)), 1e-3)
    noise = p.met_resolution * jax.random.normal(keys[9], (n, 2))
  else:
    scale, noise = jnp.ones((n, 2)), jnp.zeros((n, 2))
  pt_meas = pt_l * scale
  lost = (1 - scale)[..., None] * leptons[..., 1:3]  # true minus measured lepton (px, py)
  met = invisible + jnp.sum(lost, 1) - noise  # = -(measured leptons + measured recoil)
  accepted = jnp.all((jnp.abs(eta_l) < p.lepton_eta_max) & (pt_meas > p.lepton_pt_min), 1)
  lep = jnp.stack([pt_meas, eta_l, phi_l], -1)
  lead = (pt_meas[:, 0] >= pt_meas[:, 1])[:, None]
  lep1, lep2 = jnp.where(lead, lep[:, 0], lep[:, 1]), jnp.where(lead, lep[:, 1], lep[:, 0])
  met_polar = jnp.stack([jnp.hypot(met[:, 0], met[:, 1]), arctan2(met[:, 1], met[:, 0])], -1)
  out = dict(inputs=jnp.concatenate([lep1, lep2, met_polar], -1), accepted=accepted)
  if truth:
    out.update(pair=pair, parents=parents, w=w, leptons=leptons, neutrinos=nus, neutralinos=chi0,
               w_mass=w_mass, recoil=recoil, met=met)
  return out


def uci_rescale(x: np.ndarray) -> np.ndarray:
  """The UCI file's column rescaling, fitted on ``x`` ``(n, k)`` itself.

  A column with negative values -> mean 0, standard deviation 1; a non-negative column
  whose maximum exceeds 1 -> divided by its mean; any other column unchanged.
  """
  x = np.asarray(x, np.float64)
  out = x.copy()
  negative = x.min(0) < 0
  large = ~negative & (x.max(0) > 1)
  out[:, negative] = (x[:, negative] - x[:, negative].mean(0)) / x[:, negative].std(0)
  out[:, large] = x[:, large] / x[:, large].mean(0)
  return out.astype(np.float32)


def _collect(key, n, signal, p, smear, chunk, truth):
  """``n`` accepted events of one class: fixed-size compiled chunks, filtered on the host."""
  parts, have, i = [], 0, 0
  while have < n:
    batch = jax.device_get(generate_events(jax.random.fold_in(key, i), chunk, signal, p, smear, truth))
    keep = batch.pop("accepted")
    parts.append({k: v[keep] for k, v in batch.items()})
    have += int(keep.sum())
    i += 1
    if have == 0:
      raise ValueError(f"the lepton selection accepted none of {chunk} generated events; "
                       "check lepton_pt_min and lepton_eta_max")
  return {k: np.concatenate([q[k] for q in parts])[:n] for k in parts[0]}


def simulate_susy(key, n_events: int, params: Optional[SusyParams] = None, *,
                  signal_fraction: float = 0.458, smear: bool = True, rescale: bool = False,
                  chunk_size: int = 1 << 16, return_truth: bool = False, **overrides):
  """Simulated SUSY events: ``(features float32 (n, 18), labels int32 (n,))``.

  Args:
    key: a ``jax.random`` key; the same key gives the same events.
    n_events: events after the lepton selection.
    params: a :class:`SusyParams`; ``overrides`` replace its fields (e.g.
      ``m_chargino=300.0``).
    signal_fraction: exactly ``round(signal_fraction * n_events)`` events are signal
      (label 1), in random order.
    smear: detector smearing of the lepton pT and the recoil (MET); False gives the truth.
    rescale: apply :func:`uci_rescale` (fitted on this sample) so that columns look like
      the UCI file's; otherwise GeV and radians.
    chunk_size: events generated, and events whose features are computed, per compiled
      call (memory and discarded events vs. call overhead).
    return_truth: also return a dict of the truth arrays of :func:`generate_events`,
      in the output's event order.
  """
  p = dataclasses.replace(params or SusyParams(), **overrides)
  if n_events < 1:
    raise ValueError(f"n_events must be positive, got {n_events}")
  if not 0.0 <= signal_fraction <= 1.0:
    raise ValueError(f"signal_fraction must be in [0, 1], got {signal_fraction}")
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be positive, got {chunk_size}")
  k_sig, k_bkg, k_perm = jax.random.split(key, 3)
  n_sig = int(round(signal_fraction * n_events))
  classes = [(k_sig, n_sig, True), (k_bkg, n_events - n_sig, False)]
  # Two threads: XLA runs the classes, then the feature chunks, side by side (1.6x faster
  # on 2 cores than one thread). Chunks keep their order, so the result does not depend on
  # the scheduling.
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    events = list(pool.map(lambda c: _collect(c[0], c[1], c[2], p, smear, chunk_size, return_truth),
                           [c for c in classes if c[1]]))
    order = _permutation(k_perm, n_events)
    labels = np.concatenate([np.full(n, int(s), np.int32) for _, n, s in classes if n])[order]
    truth = {k: np.concatenate([e[k] for e in events])[order] for k in events[0]}
    x = _features(truth.pop("inputs"), chunk_size, pool)
  x = uci_rescale(x) if rescale else x
  if return_truth:
    return x, labels, truth
  return x, labels


def _permutation(key, n):
  """A uniformly random permutation of ``range(n)``: the order of 64 random bits per element
  (17x faster than ``jax.random.permutation`` on this CPU; ties, with probability below
  n^2 / 2^65, keep the index order)."""
  bits = np.asarray(jax.random.bits(key, (n, 2), jnp.uint32))
  return np.argsort(bits.view(np.uint64)[:, 0], kind="stable")


@jax.jit
def _susy_features(inputs):
  return susy_features(inputs[:, 0:3], inputs[:, 3:6], inputs[:, 6:8])


def _features(inputs, chunk, pool):
  """The 18 features ``(n, 18)`` float32 of ``inputs`` ``(n, 8)``, in compiled chunks of
  ``chunk`` rows (the last padded with copies of its first row) on the threads of ``pool``."""
  out = np.empty((len(inputs), 18), np.float32)

  def work(start):
    block = inputs[start:start + chunk]
    padded = np.concatenate([block, np.repeat(block[:1], chunk - len(block), 0)])
    out[start:start + len(block)] = np.asarray(_susy_features(padded))[:len(block)]

  list(pool.map(work, range(0, len(inputs), chunk)))
  return out
