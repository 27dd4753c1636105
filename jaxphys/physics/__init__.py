"""Collider kinematics for the SUSY search: four-vectors, boosts, high-level features."""

from jaxphys.physics.features import (axial_met, met_rel, razor_mr, razor_mtr, razor_r,
                                      super_razor, susy_features)
from jaxphys.physics.kinematics import (boost, delta_phi, from_pt_eta_phi, invariant_mass,
                                        to_pt_eta_phi, transverse, wrap_angle)
from jaxphys.physics.mt2 import mt2, transverse_mass
from jaxphys.physics.simulator import SusyParams, generate_events, simulate_susy, uci_rescale
