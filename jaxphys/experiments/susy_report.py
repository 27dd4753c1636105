"""What the SUSY search reports: per-run metrics on the test split, the discovery
significance with its cut chosen on the validation split, the sanity checks and the table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import jax
import numpy as np

import jaxphys as jp

if TYPE_CHECKING:
  from jaxphys.experiments.susy import Config

__all__ = ["BACKGROUND_EFFICIENCIES", "PUBLISHED", "summarise", "checks", "table",
           "significance_definition"]

# Background efficiencies at which the signal efficiency is reported.
BACKGROUND_EFFICIENCIES = (0.01, 0.05, 0.1)
# Baldi, Sadowski & Whiteson (2014), Table 2 (SUSY, AUC on the 500,000 test events).
PUBLISHED = {
    "BDT": {"low": 0.850, "high": 0.835, "all": 0.863},
    "shallow NN": {"low": 0.867, "high": 0.863, "all": 0.875},
    "deep NN": {"low": 0.872, "high": 0.865, "all": 0.876},
    "deep NN + dropout": {"low": 0.876, "high": 0.869, "all": 0.879},
}


def significance_definition(config: Config) -> str:
  """How the significance in ``results.json`` is defined, in words.

  >>> from jaxphys.experiments.susy import Config
  >>> significance_definition(Config()).startswith("Asimov discovery significance")
  True
  """
  return (f"Asimov discovery significance (Cowan et al. 2011) with s = {config.n_signal:g} x signal "
          f"efficiency, b = {config.n_background:g} x background efficiency, sigma_b = "
          f"{config.background_uncertainty:g} b; the cut is the one that maximises it on the "
          "validation split (significance_valid), and significance is quoted at that cut on the "
          "test split")


def _run_metrics(config, y_valid, s_valid, y_test, s_test) -> dict:
  """One run's metrics: test AUC, accuracy, signal efficiencies, and the significance."""
  z = dict(n_signal=config.n_signal, n_background=config.n_background,
           relative_uncertainty=config.background_uncertainty)
  chosen = jp.discovery_significance(y_valid, s_valid, **z)
  quoted = jp.discovery_significance(y_test, s_test, **z, threshold=chosen.threshold)
  wps = [jp.working_point(y_test, s_test, target_fpr=f) for f in BACKGROUND_EFFICIENCIES]
  return {"auc": jp.roc_auc(y_test, s_test), "accuracy": jp.accuracy(y_test, s_test),
          "significance": quoted.significance, "significance_valid": chosen.significance,
          "cut": chosen.threshold,
          **{f"signal_efficiency@fpr={f}": wp.tpr for f, wp in zip(BACKGROUND_EFFICIENCIES, wps)}}


def summarise(config: Config, labels: dict, scores: dict) -> dict:
  """``{metric: {"mean", "std", "values"}}`` over the runs of ``scores[split]`` ``(runs, n)``:
  test-split metrics, the significance at the cut chosen on the validation split.

  >>> from jaxphys.experiments.susy import Config
  >>> rng = np.random.default_rng(0)
  >>> labels = {s: rng.integers(0, 2, 2000) for s in ("valid", "test")}
  >>> scores = {s: (labels[s] + rng.normal(size=(2, 2000))).astype(np.float32) for s in labels}
  >>> summary = summarise(Config(), labels, scores)
  >>> len(summary["significance"]["values"]), 0.7 < summary["auc"]["mean"] < 0.8
  (2, True)
  """
  per_run = [jax.device_get(_run_metrics(config, labels["valid"], sv, labels["test"], st))
             for sv, st in zip(scores["valid"], scores["test"])]
  out = {}
  for k in per_run[0]:
    values = [float(r[k]) for r in per_run]
    if not np.all(np.isfinite(values)):
      raise ValueError(f"{k} is not finite on the test split ({values}); too few events of a class?")
    out[k] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
  return out


def checks(auc: dict) -> dict:
  """The issue's sanity targets, reported either way.

  >>> auc = {"logreg": {"all": {"mean": 0.56}}, "deep": {"all": {"mean": 0.60}}}
  >>> checks(auc)
  {'deep_not_worse_than_logreg': {'all': True}}
  """
  out = {}
  if "deep" in auc and "logreg" in auc:
    lr, dn = auc["logreg"], auc["deep"]
    out["deep_not_worse_than_logreg"] = {fs: dn[fs]["mean"] >= lr[fs]["mean"] for fs in dn if fs in lr}
    if {"low", "high"} <= set(lr) and "low" in dn:
      # How much of what the high-level features give logistic regression the deep
      # network finds on the low-level ones alone (1 = all of it).
      gain = lr["high"]["mean"] - lr["low"]["mean"]
      out["logreg_high_minus_low"] = gain
      out["deep_low_minus_logreg_low"] = dn["low"]["mean"] - lr["low"]["mean"]
      out["low_deep_recovers_high_logreg_gain"] = (
          out["deep_low_minus_logreg_low"] / gain if gain > 1e-3 else None)
  return out


def table(results: dict, feature_sets: Sequence[str]) -> str:
  """Markdown table: test AUC (mean ± std over seeds) per model and feature set, and the
  significance on all features.

  >>> stat = {"mean": 0.6, "std": 0.001}
  >>> print(table({"auc": {"deep": {"all": stat}}, "significance": {"deep": {"all": stat}}}, ["all"]))
  | model | AUC all | significance (all) |
  | --- | --- | --- |
  | deep | 0.6000 ± 0.0010 | 0.60 ± 0.00 |
  """
  auc = results["auc"]
  fss = [fs for fs in feature_sets if any(fs in v for v in auc.values())]
  last = fss[-1]
  lines = ["| model | " + " | ".join(f"AUC {fs}" for fs in fss) + f" | significance ({last}) |",
           "| --- |" + " --- |" * (len(fss) + 1)]
  for name, per in auc.items():
    cells = [f"{per[fs]['mean']:.4f} ± {per[fs]['std']:.4f}" if fs in per else "" for fs in fss]
    sig = results["significance"][name].get(last)
    cells.append(f"{sig['mean']:.2f} ± {sig['std']:.2f}" if sig else "")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)
