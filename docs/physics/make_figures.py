"""The figures of docs/physics/susy_toy.md: the toy's distributions beside the facts read
from Baldi, Sadowski & Whiteson (2014), Figs. 5 and 6.

    PYTHONPATH=. python docs/physics/make_figures.py [--events 200000] [--out docs/physics/figures]

Histograms are normalised per class, with statistical uncertainties (Poisson, per bin);
grey bands mark where the paper's figure peaks (read from the figure, approximate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxphys.data import SUSY_COLUMNS  # noqa: E402
from jaxphys.physics import simulate_susy  # noqa: E402

COL = {name: i for i, name in enumerate(SUSY_COLUMNS)}
STYLE = {1: ("signal", "tab:red"), 0: ("background", "tab:blue")}


def _hist(ax, values, labels, bins, xlabel, paper=None, discrete=False):
  """Per-class normalised histograms with Poisson error bars; ``paper`` maps a class to
  the (lo, hi) range where the paper's figure peaks."""
  for cls, (name, color) in STYLE.items():
    v = values[labels == cls]
    counts, edges = np.histogram(v, bins)
    width = np.diff(edges)
    norm = len(v) * (1 if discrete else width)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.step(edges, np.append(counts / norm, counts[-1] / norm[-1] if not discrete else counts[-1] / norm),
            where="post", color=color, label=f"toy {name}")
    ax.errorbar(centres, counts / norm, np.sqrt(counts) / norm, fmt="none", color=color, lw=0.8)
    if paper and cls in paper:
      ax.axvspan(*paper[cls], color=color, alpha=0.15, lw=0)
  ax.set_xlabel(xlabel)
  ax.set_ylabel("fraction per bin" if discrete else f"fraction per {xlabel.split('[')[-1].rstrip(']')}"
                if "[" in xlabel else "fraction per unit")
  ax.legend(fontsize=7, frameon=False)


def figure_5(x, y, jets, path):
  n_jets = (jets[..., 0] > 0).sum(-1)
  ht = jets[..., 0].sum(-1)
  fig, axes = plt.subplots(2, 2, figsize=(9, 7), constrained_layout=True)
  _hist(axes[0, 0], n_jets, y, np.arange(-0.5, jets.shape[1] + 1), "number of jets (pT > 20 GeV)",
        discrete=True)
  for frac, cls in ((0.22, 1), (0.60, 0)):
    axes[0, 0].plot([-0.4, 0.4], [frac, frac], color=STYLE[cls][1], ls="--", lw=1.5)
  axes[0, 0].set_title("Fig. 5: no jet in 22 % (sig.) / 60 % (bkg.) (dashed)", fontsize=9)
  has = n_jets > 0
  _hist(axes[0, 1], ht[has], y[has], np.linspace(0, 300, 31), "scalar sum of jet pT [GeV]",
        {1: (55, 75), 0: (25, 35)})
  axes[0, 1].set_title("events with jets; paper peaks ~65 / ~30 GeV (bands)", fontsize=9)
  _hist(axes[1, 0], x[:, COL["lepton_1_pT"]], y, np.linspace(20, 220, 41), "leading lepton pT [GeV]",
        {1: (55, 65), 0: (40, 50)})
  axes[1, 0].set_title("paper peaks 55-65 (sig., broad) / 40-50 GeV (bkg.)", fontsize=9)
  _hist(axes[1, 1], x[:, COL["missing_energy_magnitude"]], y, np.linspace(20, 320, 31), "MET [GeV]",
        {1: (60, 80), 0: (40, 50)})
  axes[1, 1].set_title("paper peaks ~70 (sig., long tail) / ~45 GeV (bkg.)", fontsize=9)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def figure_6(x, y, path):
  fig, axes = plt.subplots(2, 2, figsize=(9, 7), constrained_layout=True)
  _hist(axes[0, 0], x[:, COL["MT2"]], y, np.linspace(0, 200, 21), "MT2 [GeV]")
  axes[0, 0].set_title("paper: first bin holds ~31 % (sig.) / ~23 % (bkg.)", fontsize=9)
  _hist(axes[0, 1], x[:, COL["axial_MET"]], y, np.linspace(-250, 300, 56), "axial MET [GeV]",
        {1: (-40, -20), 0: (-40, -20)})
  axes[0, 1].set_title("paper: negative modes (-20 to -40 GeV)", fontsize=9)
  _hist(axes[1, 0], x[:, COL["dPhi_r_b"]], y, np.linspace(-np.pi, np.pi, 33), "dPhi_R^beta [rad]")
  axes[1, 0].set_title("paper: symmetric on [-pi, pi], peaked at 0, alike", fontsize=9)
  _hist(axes[1, 1], x[:, COL["S_R"]], y, np.linspace(0, 800, 41), "sqrt(s-hat)_R [GeV]",
        {1: (230, 270), 0: (160, 180)})
  axes[1, 1].set_title("paper peaks ~250 (sig., tail to 700) / ~170 GeV (bkg.)", fontsize=9)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def all_features(x, y, path):
  units = {"pT": "GeV", "eta": "", "phi": "rad", "magnitude": "GeV", "MET_rel": "GeV",
           "axial_MET": "GeV", "M_R": "GeV", "M_TR_2": "GeV", "MT2": "GeV", "S_R": "GeV",
           "M_Delta_R": "GeV", "dPhi_r_b": "rad"}
  fig, axes = plt.subplots(6, 3, figsize=(11, 17), constrained_layout=True)
  for i, (ax, name) in enumerate(zip(axes.flat, SUSY_COLUMNS)):
    unit = next((u for k, u in units.items() if name.endswith(k)), "")
    v = x[:, i]
    lo, hi = np.quantile(v, [0.001, 0.995])
    _hist(ax, v, y, np.linspace(lo, hi, 41), f"{name} [{unit}]" if unit else name)
  fig.savefig(path, dpi=90)
  plt.close(fig)


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--events", type=int, default=200_000)
  ap.add_argument("--out", default=str(Path(__file__).parent / "figures"))
  args = ap.parse_args(argv)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  x, y, truth = simulate_susy(jax.random.key(0), args.events, return_truth=True)
  figure_5(x, y, truth["jets"], out / "fig5_jets_leptons_met.png")
  figure_6(x, y, out / "fig6_mt2_axial_dphi_sr.png")
  all_features(x, y, out / "all_features.png")
  print(f"wrote {out}/*.png from {args.events:,} events")


if __name__ == "__main__":
  main()
