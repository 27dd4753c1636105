"""Four-vectors of massless particles and Lorentz boosts (GeV, radians).

A four-vector is an array ``(..., 4)`` holding ``(E, px, py, pz)``; the z axis is the
beam. Pseudorapidity ``eta = -ln tan(theta/2)``; for a massless particle
``pz = pT sinh(eta)`` and ``E = pT cosh(eta)``.
"""

from __future__ import annotations

import functools
import operator

import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxphys.physics._trig import arctan2, sincos

__all__ = ["from_pt_eta_phi", "to_pt_eta_phi", "boost", "invariant_mass", "wrap_angle",
           "delta_phi", "transverse"]


def _sum(x, axis=-1, keepdims=False):
  """Sum over a short axis (components, leptons, jet slots) as unrolled adds.

  XLA's CPU backend runs a reduction as a separate library kernel that the neighbouring
  arithmetic cannot fuse with; over 2-4 elements that call and the arrays it reads and
  writes are the cost, not the adds (measured: BENCHMARKS.md, "SUSY event simulator").
  """
  x = jnp.moveaxis(jnp.asarray(x), axis, -1)
  total = functools.reduce(operator.add, [x[..., i] for i in range(x.shape[-1])])
  return jnp.expand_dims(total, axis) if keepdims else total


def _stack(columns):
  """``jnp.stack(columns, -1)`` (shapes broadcast), written column by column into one array.

  XLA's CPU backend fuses the computation of all columns into the stack and emits it
  again for every column; a subexpression that feeds two columns (a ``sincos``, an
  ``ndtri``) is then re-emitted as a tree instead of a graph. Column updates in place
  keep each column's computation in its own loop (measured: BENCHMARKS.md).
  """
  columns = [jnp.asarray(c) for c in columns]
  shape = jnp.broadcast_shapes(*(c.shape for c in columns))
  out = jnp.zeros(shape + (len(columns),), jnp.result_type(*columns))
  for i, c in enumerate(columns):
    out = out.at[..., i].set(c)
  return out


def _cosh_sinh(x):
  """``(cosh x, sinh x)`` from one exponential (XLA expands ``cosh`` and ``sinh`` into two
  each). ``sinh`` near 0 carries the float rounding of ``cosh`` as an absolute error
  (about 1e-7 in float32), which momenta ``pT sinh(eta)`` do not resolve."""
  e = jnp.exp(x)
  return 0.5 * (e + 1 / e), 0.5 * (e - 1 / e)


def from_pt_eta_phi(pt: ArrayLike, eta: ArrayLike, phi: ArrayLike) -> jnp.ndarray:
  """Massless four-vectors ``(..., 4)`` from ``pT`` (GeV), ``eta`` and ``phi`` (rad), each ``(...)``.

  >>> from_pt_eta_phi(jnp.array(10.0), jnp.array(0.0), jnp.array(0.0)).tolist()
  [10.0, 10.0, 0.0, 0.0]
  """
  sin, cos = sincos(phi)
  cosh, sinh = _cosh_sinh(eta)
  return jnp.stack([pt * cosh, pt * cos, pt * sin, pt * sinh], -1)


def to_pt_eta_phi(p: ArrayLike) -> tuple:
  """``(pT, eta, phi)``, each ``(...)``, of four-vectors ``(..., 4)``.

  >>> pt, eta, phi = to_pt_eta_phi(jnp.array([5.0, 3.0, 4.0, 0.0]))
  >>> float(pt), float(eta)
  (5.0, 0.0)
  """
  # Plain sqrt and log forms: jnp.hypot and jnp.arcsinh guard against overflow at
  # magnitudes far beyond any momentum in GeV, and that guard costs (BENCHMARKS.md).
  pt = jnp.sqrt(p[..., 1] ** 2 + p[..., 2] ** 2)
  pz = p[..., 3]
  eta = jnp.log((jnp.sqrt(pt * pt + pz * pz) + jnp.abs(pz)) / pt)
  return pt, jnp.where(pz < 0, -eta, eta), arctan2(p[..., 2], p[..., 1])


def boost(p: ArrayLike, beta: ArrayLike) -> jnp.ndarray:
  r"""Four-vectors ``p`` ``(..., 4)`` seen from a frame moving with velocity ``beta`` ``(..., 3)``.

  :math:`E' = \gamma(E - \beta\cdot\vec p)`,
  :math:`\vec p\,' = \vec p + [(\gamma - 1)(\hat\beta\cdot\vec p) - \gamma\beta E]\hat\beta`.
  ``beta = 0`` is the identity. Requires ``|beta| < 1``.

  >>> rest = boost(jnp.array([5.0, 3.0, 0.0, 0.0]), jnp.array([0.6, 0.0, 0.0]))
  >>> [round(float(v), 4) for v in rest]
  [4.0, 0.0, 0.0, 0.0]
  """
  b2 = _sum(beta * beta, -1, keepdims=True)
  gamma = 1.0 / jnp.sqrt(1.0 - b2)
  e, vec = p[..., :1], p[..., 1:]
  bp = _sum(beta * vec, -1, keepdims=True)
  # (gamma - 1) / beta^2 = gamma^2 / (gamma + 1), finite at beta = 0.
  vec_new = vec + (gamma * gamma / (gamma + 1.0) * bp - gamma * e) * beta
  return jnp.concatenate([gamma * (e - bp), vec_new], -1)


def invariant_mass(p: ArrayLike) -> jnp.ndarray:
  """``sqrt(max(E^2 - |p|^2, 0))`` of four-vectors ``(..., 4)`` -> ``(...)``.

  >>> float(invariant_mass(jnp.array([5.0, 3.0, 0.0, 0.0])))
  4.0
  """
  m2 = p[..., 0] ** 2 - _sum(p[..., 1:] ** 2, -1)
  return jnp.sqrt(jnp.maximum(m2, 0.0))


def wrap_angle(x: ArrayLike) -> jnp.ndarray:
  """Angle wrapped to ``[-pi, pi)``, of ``x``'s shape.

  >>> round(float(wrap_angle(jnp.array(3 * jnp.pi / 2))), 4)
  -1.5708
  """
  return (x + jnp.pi) % (2 * jnp.pi) - jnp.pi


def delta_phi(phi1: ArrayLike, phi2: ArrayLike) -> jnp.ndarray:
  """Azimuthal difference ``phi1 - phi2`` wrapped to ``[-pi, pi)``.

  >>> round(float(delta_phi(jnp.array(3.0), jnp.array(-3.0))), 4)
  -0.2832
  """
  return wrap_angle(phi1 - phi2)


def transverse(p: ArrayLike) -> jnp.ndarray:
  """``(px, py)`` ``(..., 2)`` of four-vectors ``(..., 4)``.

  >>> transverse(jnp.array([5.0, 3.0, 4.0, 0.0])).tolist()
  [3.0, 4.0]
  """
  return p[..., 1:3]
