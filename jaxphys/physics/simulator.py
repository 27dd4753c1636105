"""A fast toy simulator of the UCI SUSY events: chargino pairs against W+W- (GeV, radians).

Signal: ``g g -> h -> chi+ chi-``, ``chi -> W chi0``, ``W -> l nu``; background:
``q q-bar -> W+ W-`` by t-channel quark exchange, ``W -> l nu`` (the two example diagrams
of Baldi, Sadowski & Whiteson 2014, Fig. 4). A toy of the paper's MadGraph + Pythia +
Delphes chain: leading-log initial-state radiation instead of a parton shower, no
hadronisation, no spin correlations, one lepton flavour, a Gaussian detector. Each
modelling choice is a field of :class:`SusyParams`; ``docs/physics/reference.md`` and
``docs/physics/susy_toy.md`` give the sources and set the toy's distributions beside
the paper's figures.

1. Pair mass ``m = sqrt(s-hat)`` from ``dsigma/dm = (2m/s) L(tau) sigma-hat(s-hat)`` with a
   toy parton luminosity ``L = (1 - sqrt(tau))^lumi_power / tau^lumi_slope``:
   ``sigma-hat ~ beta / s-hat`` for W pairs (an S-wave threshold), ``sigma-hat ~ beta^3``
   for charginos from an off-shell scalar (a P-wave threshold, ``signal_mass="continuum"``),
   or ``beta^3`` times a relativistic Breit-Wigner scalar resonance
   (``signal_mass="resonance"``). Inverse-CDF tables on uniform grids (a draw is
   a lookup). Pair rapidity: a Gaussian of width ``rapidity_width`` truncated to
   ``|y| < ln(sqrt_s / m)``.
2. Production angle in the pair frame: isotropic for the signal (a spin-0 parent); for
   W pairs the quark-exchange (t- and u-channel) term ``(ut - m_W^4)(1/t^2 + 1/u^2)`` of
   ``q q-bar -> W+ W-`` (:func:`t_channel_density`), forward and backward peaked, from a
   table of its inverse CDF in ``(beta, u)``.
3. Initial-state radiation: ``Poisson(nu)`` jets above ``jet_pt_min``, ``nu`` per process
   fixed by the fraction of events without a jet (``no_jet_fraction``, read from the
   paper's Fig. 5; gluons radiate more than quarks, ``C_A / C_F = 9/4``). Each jet is an
   independent leading-log emission off the hard scale ``Q = sqrt(s-hat)``: uniform in
   the triangle ``|eta - y| < ln(Q / pT)``, ``jet_pt_min < pT < Q`` of the Lund plane,
   i.e. ``dN/dpT ~ ln(Q/pT) / pT``. Radiation below the threshold is a Gaussian
   ``soft_recoil`` per transverse component. The pair recoils against all of it.
4. Two-body decays, isotropic in the parent's rest frame; W masses from a relativistic
   Breit-Wigner truncated to ``w_mass_window`` (and below ``m_chargino - m_neutralino``).
5. Detector: lepton pT smeared by ``lepton_pt_resolution`` (relative), jet pT by
   ``jet_pt_stochastic / sqrt(pT)`` (relative); eta and phi exact. MET = -(measured
   leptons + measured jets + measured soft recoil), the soft recoil measured with a
   Gaussian ``met_resolution`` per component; without smearing MET is exactly the sum of
   the invisible momenta. The paper's selection: two leptons with ``pT > lepton_pt_min``
   and ``|eta| < lepton_eta_max``, and ``MET >= met_min``; lepton 1 is the leading one.
6. Features: :func:`jaxphys.physics.susy_features` (MET_rel with leptons and jets),
   optionally rescaled like the UCI file (:func:`uci_rescale`).

Left out: parton shower beyond independent leading-log emissions, the underlying event
and pile-up (only through ``met_resolution``), hadronisation, jet clustering and
isolation, lepton flavours, fakes and efficiencies, tau leptons, W polarisation and spin
correlations, other background processes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxphys.physics._trig import arctan2, sincos
from jaxphys.physics.features import susy_features
from jaxphys.physics.kinematics import _cosh_sinh, _stack, _sum, boost, to_pt_eta_phi

__all__ = ["SusyParams", "simulate_susy", "generate_events", "uci_rescale", "t_channel_density"]

_ANGLES = ("t-channel", "1+cos2", "isotropic")


@dataclasses.dataclass(frozen=True)
class SusyParams:
  """Physical constants and modelling choices of the simulator (GeV unless stated).

  Sources (Baldi, Sadowski & Whiteson 2014, "the paper"): masses and sqrt(s), the
  paper's text; the selection, its Methods; ``no_jet_fraction_*``, its Fig. 5 (read from
  the figure); the rest are standard values for an LHC detector (see
  ``docs/physics/reference.md``).

  >>> SusyParams().lepton_pt_min, SusyParams().met_min
  (20.0, 20.0)
  """
  sqrt_s: float = 8000.0              # collision energy (the paper: 8 TeV)
  m_chargino: float = 200.0           # the paper's text
  m_neutralino: float = 100.0         # the paper's text
  m_w: float = 80.4
  gamma_w: float = 2.1                # W width
  w_mass_window: tuple = (50.0, 130.0)  # Breit-Wigner truncation
  lumi_power: float = 10.0            # (1 - sqrt(tau))^p in the toy parton luminosity
  lumi_slope: float = 2.0             # tau^-lumi_slope in the toy parton luminosity
  rapidity_width: float = 1.2         # Gaussian width of the pair rapidity (before truncation)
  signal_mass: str = "continuum"      # "continuum" or "resonance" (gg -> h -> chi chi)
  m_scalar: float = 450.0             # resonance option only: the paper gives no mass
  gamma_scalar: float = 45.0          # resonance option only
  background_angle: str = "t-channel"  # W-pair polar angle: "t-channel", "1+cos2", "isotropic"
  no_jet_fraction_signal: float = 0.22      # the paper's Fig. 5
  no_jet_fraction_background: float = 0.60  # the paper's Fig. 5
  jet_pt_min: float = 20.0            # jet threshold of the usual Delphes LHC cards
  max_jets: int = 3                   # jet slots (the Poisson count is capped here)
  soft_recoil: float = 5.0            # radiation below jet_pt_min, per component
  lepton_pt_resolution: float = 0.03  # relative
  jet_pt_stochastic: float = 1.0      # relative jet resolution 1.0 / sqrt(pT / GeV)
  met_resolution: float = 10.0        # soft term (underlying event, pile-up), per component
  lepton_pt_min: float = 20.0         # the paper's selection
  lepton_eta_max: float = 2.5         # the paper's selection
  met_min: float = 20.0               # the paper's selection
  grid_size: int = 8192               # points of the tabulated pair-mass CDF and its inverse

  def __post_init__(self):
    if self.signal_mass not in ("continuum", "resonance"):
      raise ValueError(f"signal_mass must be 'continuum' or 'resonance', got {self.signal_mass!r}")
    if self.background_angle not in _ANGLES:
      raise ValueError(f"background_angle must be one of {_ANGLES}, got {self.background_angle!r}")
    if self.m_chargino - self.m_neutralino <= self.w_mass_window[0]:
      raise ValueError("m_chargino - m_neutralino must exceed the lower end of w_mass_window")
    for name in ("no_jet_fraction_signal", "no_jet_fraction_background"):
      if not 0.0 < getattr(self, name) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
    if self.max_jets < 1 or self.jet_pt_min <= 0:
      raise ValueError("max_jets must be >= 1 and jet_pt_min positive")


def _mass_tables(p: SusyParams, signal: bool):
  """The pair-mass CDF on a uniform grid of masses and its inverse on a uniform grid of
  probabilities, ``(m_lo, m_hi, cdf, inverse)`` (NumPy float64; both tables
  ``grid_size`` points, built from a 16x finer trapezoid integration)."""
  m_d = p.m_chargino if signal else p.m_w
  lo, hi = 2 * m_d, p.sqrt_s
  fine = np.linspace(lo, hi, 16 * p.grid_size)
  beta = np.sqrt(np.clip(1 - (lo / fine) ** 2, 0, None))
  # dsigma/dm = (2 m / s) L(tau) sigma-hat(s-hat), L = (1 - sqrt(tau))^p / tau^lumi_slope.
  lumi = fine ** (1 - 2 * p.lumi_slope) * (1 - fine / hi) ** p.lumi_power
  if not signal:  # q q-bar -> W W: S-wave threshold, sigma-hat ~ beta / s-hat
    density = lumi * beta / fine ** 2
  elif p.signal_mass == "continuum":  # g g -> h* -> chi chi: P-wave, sigma-hat ~ beta^3
    density = lumi * beta ** 3
  else:  # through a scalar resonance: sigma-hat ~ beta^3 times a Breit-Wigner in s-hat
    mh2, mg = p.m_scalar ** 2, p.m_scalar * p.gamma_scalar
    density = lumi * beta ** 3 * fine ** 4 / ((fine ** 2 - mh2) ** 2 + mg ** 2)
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


def t_channel_density(beta: ArrayLike, c: ArrayLike) -> np.ndarray:
  """The t-channel angular density of ``q q-bar -> W+ W-`` in ``c = cos(theta*)``.

  ``(ut - m^4)(1/t^2 + 1/u^2)`` with ``t, u = -(s/4)(1 + beta^2 -+ 2 beta c)`` and
  ``m^2 = s (1 - beta^2) / 4``, not normalised; ``beta`` is the W velocity in the pair
  frame, shapes broadcast. It is the quark-exchange term ``(ut - m^4)/t^2`` of Eichten,
  Hinchliffe, Lane & Quigg (1984, the function ``E``) without its two terms that grow
  with ``s`` (longitudinal W's, cancelled in the Standard Model by the s-channel
  diagrams that the toy leaves out), symmetrised because the quark comes from either
  beam. At high energy it is ``u/t + t/u``, as for ``q q-bar -> gamma gamma``.

  >>> bool(t_channel_density(0.8, 0.9) > t_channel_density(0.8, 0.0))
  True
  """
  beta, c = np.asarray(beta, np.float64), np.asarray(c, np.float64)
  b2 = beta * beta
  pt2 = 4 * b2 * (1 - c * c)  # (ut - m^4) in units of s^2 / 16
  return pt2 * (1 / (1 + b2 - 2 * beta * c) ** 2 + 1 / (1 + b2 + 2 * beta * c) ** 2)


@functools.lru_cache(maxsize=4)
def _angle_table(n_beta: int = 128, n_u: int = 512):
  """Inverse CDF of :func:`t_channel_density`: ``c[i, j]`` at ``beta`` on a uniform grid
  of ``[0.001, 0.999]`` and ``u = j / (n_u - 1)`` (float64, from a 64x finer trapezoid
  integration)."""
  betas = np.linspace(1e-3, 0.999, n_beta)[:, None]  # (at beta = 0 the density vanishes)
  c = np.linspace(-1, 1, 64 * n_u)
  f = t_channel_density(betas, c[None])
  cdf = np.concatenate([np.zeros((n_beta, 1)), np.cumsum((f[:, 1:] + f[:, :-1]) / 2, 1)], 1)
  cdf /= cdf[:, -1:]
  u = np.linspace(0, 1, n_u)
  return np.stack([np.interp(u, row, c) for row in cdf])


def _t_channel_cos(u, beta):
  """``cos(theta*)`` ``beta.shape`` at uniforms ``u`` from the t-channel table (bilinear)."""
  table = jnp.asarray(_angle_table(), jnp.float32)
  nb, nu = table.shape
  pb = jnp.clip((beta - 1e-3) / (0.999 - 1e-3), 0.0, 1.0) * (nb - 1)
  pu = u * (nu - 1)
  ib = jnp.minimum(jnp.floor(pb).astype(jnp.int32), nb - 2)
  iu = jnp.minimum(jnp.floor(pu).astype(jnp.int32), nu - 2)
  fb, fu = pb - ib, pu - iu
  row = lambda i: table[i, iu] * (1 - fu) + table[i, iu + 1] * fu
  return jnp.clip(row(ib) * (1 - fb) + row(ib + 1) * fb, -1.0, 1.0)


def _breit_wigner(u, p, upper):
  """Relativistic Breit-Wigner W masses in ``[w_mass_window[0], upper]`` at uniforms ``u``
  (inverse CDF in m^2), of ``u``'s shape."""
  mg = p.m_w * p.gamma_w
  lo = math.atan((p.w_mass_window[0] ** 2 - p.m_w ** 2) / mg)
  hi = math.atan((upper ** 2 - p.m_w ** 2) / mg)
  sin, cos = sincos(lo + (hi - lo) * u)
  return jnp.sqrt(p.m_w ** 2 + mg * sin / cos)


def _two_uniforms(key, shape):
  """Two independent uniforms in ``(0, 1)``, each ``shape``, from one 32-bit draw: the
  high and low 16 bits (resolution 2^-16, ample for angles; it halves the draws, which
  dominate the simulator's time)."""
  bits = jax.lax.optimization_barrier(jax.random.bits(key, shape, jnp.uint32))
  scale = 1.0 / 65536
  return (((bits >> 16).astype(jnp.float32) + 0.5) * scale,
          ((bits & 0xFFFF).astype(jnp.float32) + 0.5) * scale)


def _normals(key, n, k):
  """``(n, 2k)`` standard normals by Box-Muller from the 16-bit uniform pairs of ``(n, k)``
  draws (the tails stop at 4.9 sigma: detector smearing needs no more)."""
  u, v = _two_uniforms(key, (n, k))
  r = jnp.sqrt(-2 * jnp.log(u))
  sin, cos = sincos(2 * jnp.pi * v)
  return jax.lax.optimization_barrier(jnp.concatenate([r * cos, r * sin], -1))


def _direction(key, shape, production="isotropic", beta=None):
  """Unit 3-vectors ``shape + (3,)``: isotropic, polar angle ~ 1 + cos^2 about z, or the
  t-channel W-pair distribution at W velocity ``beta`` ``shape``."""
  u, v = _two_uniforms(key, shape)
  if production == "t-channel":
    c = _t_channel_cos(u, beta)
  elif production == "1+cos2":  # root of c^3 + 3c + 4 - 8u = 0 (the CDF of 1 + c^2)
    c = 2 * jnp.sinh(jnp.arcsinh(4 * u - 2) / 3)
  else:
    c = 2 * u - 1
  phi = jnp.pi * (2 * v - 1)
  s = jnp.sqrt(jnp.maximum(1 - c * c, 0.0))
  sin, cos = sincos(phi)
  return _stack([s * cos, s * sin, c])


def _momentum(m, ma, mb):
  """Daughter momentum in a two-body decay ``m -> ma + mb`` (Kallen function)."""
  lam = (m * m - (ma + mb) ** 2) * (m * m - (ma - mb) ** 2)
  return jnp.sqrt(jnp.maximum(lam, 0.0)) / (2 * m)


def _two_body(key, parent, m, ma, mb, production="isotropic"):
  """Decay ``parent`` ``(..., 4)`` of mass ``m`` into masses ``ma``, ``mb``: lab four-vectors."""
  q_abs = _momentum(m, ma, mb)
  ea, eb = jnp.sqrt(ma * ma + q_abs * q_abs), jnp.sqrt(mb * mb + q_abs * q_abs)
  q = q_abs[..., None] * _direction(key, m.shape, production, q_abs / ea)
  to_lab = -parent[..., 1:] / parent[..., :1]  # the lab moves with -beta seen from the parent
  return jax.lax.optimization_barrier(  # computed once, not in each consumer
      (boost(jnp.concatenate([ea[..., None], q], -1), to_lab),
       boost(jnp.concatenate([eb[..., None], -q], -1), to_lab)))


def _isr_jets(key, m, y, n_jets_mean, p):
  """Initial-state radiation off the hard scale ``m`` ``(n,)`` at pair rapidity ``y``:
  true jets ``(n, max_jets, 3)`` as ``(pT, eta, phi)`` (pT 0 in empty slots)."""
  n, j = m.shape[0], p.max_jets
  u = jax.lax.optimization_barrier(jnp.concatenate(_two_uniforms(key, (n, (3 * j + 2) // 2)), -1))
  u_pt, u_eta, u_phi, u_n = u[:, :j], u[:, j:2 * j], u[:, 2 * j:3 * j], u[:, 3 * j:3 * j + 1]
  # Poisson count by inverse CDF (thresholds are constants), capped at max_jets.
  pmf = [math.exp(-n_jets_mean) * n_jets_mean ** k / math.factorial(k) for k in range(j)]
  count = sum((u_n > c).astype(jnp.int32) for c in np.cumsum(pmf))
  # Leading-log emission: t = ln(Q / pT) has density ~ t on [0, L], L = ln(Q / pT_min).
  big_l = jnp.log(jnp.maximum(m, p.jet_pt_min) / p.jet_pt_min)[:, None]
  t = big_l * jnp.sqrt(u_pt)
  pt = jnp.where(jnp.arange(j) < count, p.jet_pt_min * jnp.exp(big_l - t), 0.0)
  eta = y[:, None] + t * (2 * u_eta - 1)
  phi = jnp.pi * (2 * u_phi - 1)
  return _stack([pt, eta, phi])


def _xy(pt, phi):
  sin, cos = sincos(phi)
  return _stack([pt * cos, pt * sin])


def _pair(key, u_y, p, signal, n):
  """The hard process: the pair's mass and rapidity ``(n,)`` (from uniforms ``u_y``),
  parent and W masses ``(n, 2)``."""
  k_w, k_m = jax.random.split(key)
  u_w = jnp.stack(_two_uniforms(k_w, (n,)), -1)
  if signal:
    m_parent = jnp.full((n, 2), p.m_chargino)
    w_mass = _breit_wigner(u_w, p, min(p.w_mass_window[1], p.m_chargino - p.m_neutralino))
    threshold = jnp.full((n,), 2 * p.m_chargino)
  else:
    w_mass = _breit_wigner(u_w, p, p.w_mass_window[1])
    m_parent = w_mass
    threshold = w_mass[:, 0] + w_mass[:, 1]
  m = _sample_mass(k_m, p, signal, threshold)
  # Pair rapidity: truncated Gaussian, exact inverse CDF.
  y_max = jnp.log(p.sqrt_s / m)
  edge = jax.scipy.special.ndtr(-y_max / p.rapidity_width)
  y = p.rapidity_width * jax.scipy.special.ndtri(edge + u_y * (1 - 2 * edge))
  return m, y, m_parent, w_mass


@functools.partial(jax.jit, static_argnames=("n", "signal", "smear", "p", "truth"))
def generate_events(key: jax.Array, n: int, signal: bool, p: SusyParams = SusyParams(), smear: bool = True,
                    truth: bool = True) -> dict:
  """One batch of ``n`` events of one class, before the paper's selection.

  Returns a dict of arrays: ``inputs`` ``(n, 8)``, the measured leptons and MET as the
  first 8 columns of the SUSY file (GeV, radians); ``jets`` ``(n, max_jets, 3)``, the
  measured jets as ``(pT, eta, phi)``, pT 0 in empty slots
  (:func:`jaxphys.physics.susy_features` of ``inputs``' three parts and ``jets`` gives all
  18); ``accepted`` ``(n,)`` bool (the selection); and with ``truth``: ``pair`` ``(n, 4)``,
  ``parents``, ``w``, ``leptons``, ``neutrinos``, ``neutralinos`` ``(n, 2, 4)`` (in W
  order; neutralinos zero for the background), ``w_mass`` ``(n, 2)``, ``true_jets``
  ``(n, max_jets, 3)``, ``recoil`` ``(n, 2)`` (px, py of all radiation) and the
  reconstructed ``met`` ``(n, 2)`` (px, py).

  >>> ev = generate_events(jax.random.key(0), 16, True)
  >>> ev["inputs"].shape, ev["jets"].shape, ev["accepted"].dtype
  ((16, 8), (16, 3, 3), dtype('bool'))
  """
  # The optimization barriers here and in the helpers keep XLA from fusing the random
  # draws and their transforms into each consumer, i.e. recomputing them (BENCHMARKS.md).
  keys = jax.random.split(key, 7)
  zeros = jnp.zeros((n, 2))
  # Gaussian numbers: soft recoil (2), lepton pT (2), MET soft term (2), jet pT (max_jets).
  gauss = _normals(keys[2], n, (6 + p.max_jets + 1) // 2)
  m, y, m_parent, w_mass = _pair(keys[0], jax.random.uniform(keys[6], (n,)), p, signal, n)
  no_jet = p.no_jet_fraction_signal if signal else p.no_jet_fraction_background
  jets = jax.lax.optimization_barrier(_isr_jets(keys[1], m, y, -math.log(no_jet), p))
  soft = p.soft_recoil * gauss[:, 0:2]
  recoil = _sum(_xy(jets[..., 0], jets[..., 2]), 1) + soft
  pt_vec = -recoil
  mt = jnp.sqrt(m * m + _sum(pt_vec ** 2, -1))
  cosh, sinh = _cosh_sinh(y)
  pair = _stack([mt * cosh, pt_vec[:, 0], pt_vec[:, 1], mt * sinh])
  angle = "isotropic" if signal else p.background_angle
  pair = jax.lax.optimization_barrier(pair)
  a, b = _two_body(keys[3], pair, m, m_parent[:, 0], m_parent[:, 1], angle)
  parents = jnp.stack([a, b], 1)
  if signal:
    w, chi0 = _two_body(keys[4], parents, m_parent, w_mass, jnp.full((n, 2), p.m_neutralino))
  else:
    w, chi0 = parents, jnp.zeros_like(parents)
  leptons, nus = _two_body(keys[5], w, w_mass, zeros, zeros)
  invisible = _sum(nus[..., 1:3] + chi0[..., 1:3], 1)
  # Detector.
  pt_l, eta_l, phi_l = to_pt_eta_phi(leptons)
  if smear:
    scale = jnp.maximum(1 + p.lepton_pt_resolution * gauss[:, 2:4], 1e-3)
    jet_sigma = p.jet_pt_stochastic / jnp.sqrt(jnp.maximum(jets[..., 0], 1.0))
    jet_scale = jnp.maximum(1 + jet_sigma * gauss[:, 6:6 + p.max_jets], 0.0)
    noise = p.met_resolution * gauss[:, 4:6]
  else:
    scale, jet_scale, noise = jnp.ones((n, 2)), jnp.ones(jets.shape[:2]), jnp.zeros((n, 2))
  pt_meas = pt_l * scale
  jets_meas = jets.at[..., 0].multiply(jet_scale)
  # True minus measured (px, py) of the leptons and jets; the soft term's noise.
  lost = (_sum((1 - scale)[..., None] * leptons[..., 1:3], 1)
          + _sum(_xy((1 - jet_scale) * jets[..., 0], jets[..., 2]), 1))
  met = invisible + lost - noise  # = -(measured leptons + measured jets + measured soft)
  met_pt = jnp.sqrt(met[:, 0] ** 2 + met[:, 1] ** 2)
  good = (jnp.abs(eta_l) < p.lepton_eta_max) & (pt_meas > p.lepton_pt_min)
  accepted = good[:, 0] & good[:, 1] & (met_pt >= p.met_min)
  lep = _stack([pt_meas, eta_l, phi_l])
  lead = (pt_meas[:, 0] >= pt_meas[:, 1])[:, None]
  lep1, lep2 = jnp.where(lead, lep[:, 0], lep[:, 1]), jnp.where(lead, lep[:, 1], lep[:, 0])
  met_polar = _stack([met_pt, arctan2(met[:, 1], met[:, 0])])
  out = dict(inputs=jnp.concatenate([lep1, lep2, met_polar], -1), jets=jets_meas, accepted=accepted)
  if truth:
    out.update(pair=pair, parents=parents, w=w, leptons=leptons, neutrinos=nus, neutralinos=chi0,
               w_mass=w_mass, true_jets=jets, recoil=recoil, met=met)
  return out


def uci_rescale(x: np.ndarray) -> np.ndarray:
  """The UCI file's column rescaling, fitted on ``x`` ``(n, k)`` itself -> ``(n, k)`` float32.

  A column with negative values -> mean 0, standard deviation 1; a non-negative column
  whose maximum exceeds 1 -> divided by its mean; any other column unchanged.

  >>> uci_rescale(np.array([[1.0, 0.5], [3.0, 0.25]]))
  array([[0.5 , 0.5 ],
         [1.5 , 0.25]], dtype=float32)
  """
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"x must be 2-D (events, features), got shape {x.shape}")
  out = x.copy()
  negative = x.min(0) < 0
  large = ~negative & (x.max(0) > 1)
  out[:, negative] = (x[:, negative] - x[:, negative].mean(0)) / x[:, negative].std(0)
  out[:, large] = x[:, large] / x[:, large].mean(0)
  return out.astype(np.float32)


@functools.partial(jax.jit, static_argnames=("n", "signal", "smear", "p", "truth"))
def _chunk(key, n, signal, p, smear, truth):
  """:func:`generate_events` with ``inputs`` and ``jets`` packed into ``rows`` ``(n, 8 + 3J)``
  (one host transfer and one selection mask instead of two)."""
  ev = generate_events(key, n, signal, p, smear, truth)
  ev["rows"] = jnp.concatenate([ev.pop("inputs"), ev.pop("jets").reshape(n, -1)], -1)
  return ev


def _collect(key, n, signal, p, smear, chunk, truth):
  """``n`` accepted events of one class: fixed-size compiled chunks, filtered on the host;
  a dict with ``rows`` ``(n, 8 + 3J)`` (inputs, then the flattened jets) and, with
  ``truth``, the truth arrays of :func:`generate_events`."""
  parts, have, i = [], 0, 0
  while have < n:
    batch = jax.device_get(_chunk(jax.random.fold_in(key, i), chunk, signal, p, smear, truth))
    keep = batch.pop("accepted")
    parts.append({k: v[keep] for k, v in batch.items()})
    have += len(parts[-1]["rows"])
    i += 1
    if have == 0:
      raise ValueError(f"the selection accepted none of {chunk} generated events; "
                       "check lepton_pt_min, lepton_eta_max and met_min")
  return {k: np.concatenate([q[k] for q in parts])[:n] for k in parts[0]}


def simulate_susy(key: jax.Array, n_events: int, params: Optional[SusyParams] = None, *,
                  signal_fraction: float = 0.458, smear: bool = True, rescale: bool = False,
                  chunk_size: int = 1 << 16, return_truth: bool = False,
                  **overrides) -> Union[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, dict]]:
  """Simulated SUSY events: ``(features float32 (n, 18), labels int32 (n,))``.

  Args:
    key: a ``jax.random`` key; the same key gives the same events.
    n_events: events after the paper's selection (every returned event passes it).
    params: a :class:`SusyParams`; ``overrides`` replace its fields (e.g.
      ``m_chargino=300.0``).
    signal_fraction: exactly ``round(signal_fraction * n_events)`` events are signal
      (label 1), in random order (the paper's sample: 45.8 %).
    smear: detector smearing of the leptons, jets and soft term (MET); False gives the truth.
    rescale: apply :func:`uci_rescale` (fitted on this sample) so that columns look like
      the UCI file's; otherwise GeV and radians.
    chunk_size: events generated, and events whose features are computed, per compiled
      call (memory and discarded events vs. call overhead).
    return_truth: also return a dict of the truth arrays of :func:`generate_events`
      (and the measured ``jets``), in the output's event order. (It compiles a different
      program: the features agree with those of ``return_truth=False`` to float32
      rounding, not bit for bit.)

  >>> x, y = simulate_susy(jax.random.key(0), 100, chunk_size=4096)
  >>> x.shape, y.shape, int(y.sum())
  ((100, 18), (100,), 46)
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
  # Two threads: XLA runs the classes side by side (faster on 2 cores than one thread:
  # BENCHMARKS.md). Chunks keep their order, so the result does not depend on the scheduling.
  # Each class's features are computed before the shuffle, so that one (n, 18) array is
  # shuffled instead of the inputs and the jets.
  def work(c):
    ev = _collect(c[0], c[1], c[2], p, smear, chunk_size, return_truth)
    rows = ev.pop("rows")
    if return_truth:
      ev["jets"] = rows[:, 8:].reshape(len(rows), p.max_jets, 3)
    return ev, _features(rows, p.max_jets, chunk_size)

  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    results = list(pool.map(work, [c for c in classes if c[1]]))
  # Events of a class are exchangeable, so a uniformly random order of the labels, with
  # each class's events placed in their generated order, is a uniform shuffle of the
  # sample (a boolean mask moves rows in order, cheaper than a random gather).
  is_signal = _signal_positions(k_perm, n_events, n_sig)
  by_class = lambda arrays: _interleave(is_signal, *arrays) if n_sig and n_events - n_sig else arrays[0]
  x = by_class([r[1] for r in results])
  labels = is_signal.astype(np.int32)
  if return_truth:
    truth = {k: by_class([r[0][k] for r in results]) for k in results[0][0]}
  x = uci_rescale(x) if rescale else x
  if return_truth:
    return x, labels, truth
  return x, labels


def _signal_positions(key, n, n_sig):
  """A uniformly random choice of ``n_sig`` of ``n`` positions, as a bool mask ``(n,)``: the
  ``n_sig`` smallest of 64 random bits per position (a partition, not a sort; ties, with
  probability below n^2 / 2^65, are broken by the partition's deterministic order)."""
  mask = np.zeros(n, bool)
  if n_sig:
    bits = np.asarray(jax.random.bits(key, (n, 2), jnp.uint32)).view(np.uint64)[:, 0]
    mask[np.argpartition(bits, n_sig - 1)[:n_sig]] = True
  return mask


def _interleave(is_signal, signal, background):
  """Rows of ``signal`` at the True positions of ``is_signal``, of ``background`` at the
  others, each in order."""
  out = np.empty((len(is_signal),) + signal.shape[1:], signal.dtype)
  out[is_signal], out[~is_signal] = signal, background
  return out


@functools.partial(jax.jit, static_argnames="n_jets")
def _susy_features(rows, n_jets):
  jets = rows[:, 8:].reshape(len(rows), n_jets, 3)
  return susy_features(rows[:, 0:3], rows[:, 3:6], rows[:, 6:8], jets)


def _features(rows, n_jets, chunk):
  """The 18 features ``(n, 18)`` float32 of ``rows`` ``(n, 8 + 3 n_jets)`` (inputs, then
  the flattened jets), in compiled chunks of ``chunk`` rows (the last padded with copies
  of its first row)."""
  out = np.empty((len(rows), 18), np.float32)
  for start in range(0, len(rows), chunk):
    part = rows[start:start + chunk]
    n = len(part)
    if n < chunk:
      part = np.concatenate([part, np.repeat(part[:1], chunk - n, 0)])
    out[start:start + n] = np.asarray(_susy_features(part, n_jets))[:n]
  return out
