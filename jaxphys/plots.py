"""Figures for papers and lessons (needs matplotlib: ``pip install jaxphys[plots]``).

Each figure function returns a :class:`matplotlib.figure.Figure` made without pyplot
(no global state, nothing to close) in constrained layout, so titles and labels never
overlap; :func:`save_figure` writes one as PNG, atomically. The ``save_*`` functions do
both in one call and return the path.

Conventions: an axis label carries its unit in brackets (``lepton pT [GeV]``);
histograms show each bin's statistical uncertainty :math:`\\sqrt{\\sum w^2}` as an error
bar (:func:`binned`), and a ratio panel where two samples are compared; epochs are
integers, counted from 1.

>>> import numpy as np
>>> from jaxphys import plots
>>> fig = plots.learning_curves({"train_loss": np.array([0.9, 0.5, 0.4])})
>>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
('epoch', 'cross-entropy [nats per example]')
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from jaxphys._io import atomic_write_bytes

if TYPE_CHECKING:
  from matplotlib.axes import Axes
  from matplotlib.figure import Figure

__all__ = ["binned", "save_figure", "image_grid", "augmentation_grid", "learning_curves",
           "confusion_matrix", "roc_curves", "histogram", "class_histograms",
           "save_image_grid", "save_learning_curves", "save_confusion_matrix", "save_roc_curves",
           "save_class_histograms"]

PathLike = Union[str, os.PathLike]
Bins = Union[int, ArrayLike]  # a number of equal bins, or the edges
_LOSS_LABEL = "cross-entropy [nats per example]"


def _figure(**kwargs) -> Figure:
  try:
    from matplotlib.figure import Figure
  except ImportError:
    raise ImportError("jaxphys.plots needs matplotlib: pip install 'jaxphys[plots]'") from None
  return Figure(layout="constrained", **kwargs)


def _label(name: str, unit: str = "") -> str:
  return f"{name} [{unit}]" if unit else name


def _log_y(ax: Axes) -> None:
  """Log-scale y axis labelled with plain numbers (0.01, 0.3, 1); on a range shorter than
  one decade, the minor ticks 2, 3 and 5 too."""
  from matplotlib.ticker import FuncFormatter

  def minor(value: float, _) -> str:
    lo, hi = ax.get_ylim()
    leading = round(value / 10 ** np.floor(np.log10(value)))
    return f"{value:g}" if hi / lo < 10 and leading in (2, 3, 5) else ""

  ax.set_yscale("log")
  ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
  ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _integer_ticks(ax: Axes) -> None:
  from matplotlib.ticker import MaxNLocator

  ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig: Figure, path: PathLike, dpi: int = 110) -> Path:
  """Writes ``fig`` to ``path`` as PNG (atomically: never a partial file) and returns the path.

  >>> import tempfile
  >>> from jaxphys import plots
  >>> fig = plots.roc_curves({"ideal": ([0.0, 0.01, 1.0], [0.0, 0.99, 1.0])})
  >>> plots.save_figure(fig, tempfile.mkdtemp() + "/roc.png").suffix
  '.png'
  """
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi)
  path = Path(path)
  atomic_write_bytes(path, buf.getvalue())
  return path


def binned(values: ArrayLike, edges: ArrayLike, weights: Optional[ArrayLike] = None,
           density: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Histogram heights and their statistical uncertainties, ``((bins,), (bins,))``.

  The height of a bin is the sum of the weights :math:`w_i` of the values in it, its
  uncertainty :math:`\\sqrt{\\sum w_i^2}` (Poisson for unit weights). With ``density``,
  both are divided by the total weight and the bin width, so the heights integrate to 1
  (unit: 1 / the unit of ``values``). Values outside ``edges`` are dropped.

  >>> h, err = binned([0.5, 1.5, 1.7, 1.2], edges=[0, 1, 2])
  >>> h, err
  (array([1., 3.]), array([1.        , 1.73205081]))
  """
  values, edges = np.asarray(values, np.float64).ravel(), np.asarray(edges, np.float64)
  if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
    raise ValueError(f"edges must be an increasing 1-D array of at least 2 values, got {edges!r}")
  w = np.ones_like(values) if weights is None else np.asarray(weights, np.float64).ravel()
  if w.shape != values.shape:
    raise ValueError(f"weights has {w.size} entries but values has {values.size}")
  heights, _ = np.histogram(values, edges, weights=w)
  sumw2, _ = np.histogram(values, edges, weights=w * w)
  errors = np.sqrt(sumw2)
  if density:
    scale = heights.sum() * np.diff(edges)
    scale = np.where(scale > 0, scale, 1.0)
    heights, errors = heights / scale, errors / scale
  return heights, errors


def _images(images, name: str) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim != 3:
    raise ValueError(f"{name} must be (n, H, W) or (n, H, W, 1) grey-scale images, got shape "
                     f"{images.shape}")
  return images


def image_grid(images: ArrayLike, titles: Optional[Sequence[str]] = None, ncols: int = 10,
               title: str = "") -> Figure:
  """Grid of grey-scale ``images`` ``(n, H, W[, 1])`` (any range, dark = high) with titles.

  >>> import numpy as np
  >>> from jaxphys import plots
  >>> len(plots.image_grid(np.zeros((12, 8, 8)), ncols=5).axes)
  15
  """
  images = _images(images, "images")
  if titles is not None and len(titles) != len(images):
    raise ValueError(f"titles has {len(titles)} entries for {len(images)} images")
  n = max(len(images), 1)
  ncols = max(1, min(ncols, n))
  nrows = -(-n // ncols)
  fig = _figure(figsize=(1.1 * ncols, 1.2 * nrows + 0.3))
  axes = fig.subplots(nrows, ncols, squeeze=False)
  for i, ax in enumerate(axes.flat):
    ax.axis("off")
    if i < len(images):
      ax.imshow(images[i], cmap="gray_r", interpolation="nearest")
      if titles is not None:
        ax.set_title(titles[i], fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  return fig


def augmentation_grid(images: ArrayLike, augmented: ArrayLike, labels: ArrayLike, *,
                      class_names: Optional[Sequence[str]] = None, max_classes: int = 10,
                      row_names: Optional[Sequence[str]] = None, title: str = "") -> Figure:
  """Originals and augmented copies side by side, one column per class.

  Takes the first image of each of the first ``max_classes`` classes present in
  ``labels``, so a data set sorted by class still shows several classes.

  Args:
    images: originals ``(n, H, W[, 1])``.
    augmented: the same images augmented: ``(n, H, W[, 1])``, or ``(k, n, H, W[, 1])``
      for ``k`` independent draws (one row each).
    labels: ``(n,)`` integer classes of ``images``.
    class_names: column titles, indexed by class (default: the class numbers).
    max_classes: at most this many columns.
    row_names: labels of the augmented rows (default "augmented 1", "augmented 2", ...),
      e.g. the transform that made each draw.
    title: figure title.

  >>> import numpy as np
  >>> from jaxphys import plots
  >>> x = np.random.default_rng(0).random((30, 8, 8))
  >>> fig = plots.augmentation_grid(x, np.stack([x, x[:, ::-1]]), np.arange(30) % 3)
  >>> len(fig.axes)  # 3 rows (original, 2 draws) x 3 classes
  9
  """
  given_ndim = np.ndim(images)
  images = _images(images, "images")
  augmented = np.asarray(augmented)
  draws = augmented[None] if augmented.ndim == given_ndim else augmented
  draws = np.stack([_images(d, "augmented") for d in draws])
  labels = np.asarray(labels).ravel()
  if draws.shape[1:] != images.shape or len(labels) != len(images):
    raise ValueError(f"augmented {augmented.shape} and labels {labels.shape} must match images "
                     f"{images.shape} (k draws: augmented (k, n, H, W[, 1]))")
  classes = np.unique(labels)[:max_classes]
  first = [int(np.flatnonzero(labels == c)[0]) for c in classes]
  if row_names is None:
    row_names = ([f"augmented {j + 1}" for j in range(len(draws))] if len(draws) > 1
                 else ["augmented"])
  if len(row_names) != len(draws):
    raise ValueError(f"row_names has {len(row_names)} entries for {len(draws)} augmented draws")
  rows = [("original", images)] + list(zip(row_names, draws))
  fig = _figure(figsize=(1.0 * len(classes) + 0.9, 1.05 * len(rows) + 0.4))
  axes = fig.subplots(len(rows), len(classes), squeeze=False)
  for r, (row_name, source) in enumerate(rows):
    for c, (cls, i) in enumerate(zip(classes, first)):
      ax = axes[r, c]
      ax.imshow(source[i], cmap="gray_r", interpolation="nearest")
      ax.set_xticks([]), ax.set_yticks([])
      if r == 0:
        ax.set_title(str(class_names[cls]) if class_names is not None else str(cls), fontsize=8)
      if c == 0:
        ax.set_ylabel(row_name, fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  return fig


def _curves(ax: Axes, history: Mapping, name: str) -> bool:
  """Plots ``train_<name>`` and ``eval_<name>`` (``(epochs,)`` or ``(epochs, K)``) on ``ax``."""
  drawn = False
  for split, style in (("train", "-"), ("eval", "--")):
    values = history.get(f"{split}_{name}")
    if values is None:
      continue
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    epochs = np.arange(1, len(values) + 1)
    runs = values.shape[1]
    for k in range(runs):
      label = ("train" if split == "train" else "test") + (f", run {k}" if runs > 1 else "")
      color = f"C{k}" if runs > 1 else ("C0" if split == "train" else "C1")
      ax.plot(epochs, values[:, k], style, marker="o" if len(epochs) <= 40 else None, ms=3,
              label=label, color=color)
    drawn = True
  if drawn:
    ax.set_xlabel("epoch")
    _integer_ticks(ax)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  return drawn


def learning_curves(history: Mapping, title: str = "") -> Figure:
  """Loss, accuracy and learning rate per epoch from a :func:`jaxphys.fit` history.

  Panels for what ``history`` has: ``train_loss``/``eval_loss`` (log scale),
  ``train_accuracy``/``eval_accuracy`` and ``learning_rate``; arrays ``(epochs,)`` or
  ``(epochs, K)`` for K runs trained together. Epochs are integer ticks from 1.

  >>> import numpy as np
  >>> from jaxphys import plots
  >>> h = {"train_loss": np.array([0.7, 0.4]), "eval_loss": np.array([0.8, 0.5]),
  ...      "train_accuracy": np.array([0.6, 0.8])}
  >>> [ax.get_ylabel() for ax in plots.learning_curves(h).axes]
  ['cross-entropy [nats per example]', 'accuracy (fraction correct)']
  """
  if "train_loss" not in history:
    raise ValueError(f"history must have 'train_loss' (a fit history), got keys {sorted(history)}")
  panels = [("loss", _LOSS_LABEL)]
  if "train_accuracy" in history or "eval_accuracy" in history:
    panels.append(("accuracy", "accuracy (fraction correct)"))
  has_lr = "learning_rate" in history
  fig = _figure(figsize=(3.6 * (len(panels) + has_lr), 3.0))
  axes = fig.subplots(1, len(panels) + has_lr, squeeze=False)[0]
  for ax, (name, ylabel) in zip(axes, panels):
    _curves(ax, history, name)
    ax.set_ylabel(ylabel)
  _log_y(axes[0])
  if has_lr:
    lr = np.asarray(history["learning_rate"], np.float64)
    axes[-1].plot(np.arange(1, len(lr) + 1), lr.reshape(len(lr), -1),
                  marker="o" if len(lr) <= 40 else None, ms=3)
    axes[-1].set(xlabel="epoch", ylabel="learning rate")
    _integer_ticks(axes[-1])
    axes[-1].grid(alpha=0.3)
  if title:
    fig.suptitle(title, fontsize=10)
  return fig


def confusion_matrix(matrix: ArrayLike, class_names: Sequence[str], title: str = "") -> Figure:
  """Confusion matrix ``(C, C)`` (rows: true class, columns: predicted) with its counts.

  Cells are coloured by the fraction of their true class (each row sums to 1), so the
  diagonal reads as the per-class recall whatever the class sizes.

  >>> from jaxphys import plots
  >>> ax = plots.confusion_matrix([[5, 1], [0, 4]], ["b", "s"]).axes[0]
  >>> ax.get_xlabel(), ax.get_ylabel()
  ('predicted class', 'true class')
  """
  matrix = np.asarray(matrix)
  c = len(class_names)
  if matrix.shape != (c, c):
    raise ValueError(f"matrix must be ({c}, {c}) for {c} class_names, got {matrix.shape}")
  fraction = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
  fig = _figure(figsize=(0.5 * c + 2.4, 0.5 * c + 1.4))
  ax = fig.subplots()
  image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
  for i in range(c):
    for j in range(c):
      color = "white" if fraction[i, j] > 0.5 else ("black" if matrix[i, j] else "silver")
      ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
  ax.set_xticks(range(c), class_names, rotation=90, fontsize=7)
  ax.set_yticks(range(c), class_names, fontsize=7)
  ax.set(xlabel="predicted class", ylabel="true class")
  fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
  if title:
    ax.set_title(title, fontsize=10)
  return fig


def roc_curves(curves: Mapping, title: str = "",
               working_points: Optional[Mapping] = None) -> Figure:
  """ROC curves as signal efficiency against background rejection ``1 / fpr`` (log scale).

  ``curves`` maps a label to ``(fpr, tpr)`` arrays (e.g. from :func:`jaxphys.roc_curve`);
  ``working_points`` maps a label to one ``(fpr, tpr)`` point, drawn as a marker.

  >>> from jaxphys import plots
  >>> ax = plots.roc_curves({"a": ([0.0, 0.1, 1.0], [0.0, 0.8, 1.0])}).axes[0]
  >>> ax.get_yscale(), ax.get_xlabel()
  ('log', 'signal efficiency (true positive rate)')
  """
  fig = _figure(figsize=(5.0, 3.8))
  ax = fig.subplots()
  for label, (fpr, tpr) in curves.items():
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    if fpr.shape != tpr.shape:
      raise ValueError(f"curves[{label!r}]: fpr {fpr.shape} and tpr {tpr.shape} differ in shape")
    keep = fpr > 0
    ax.plot(tpr[keep], 1 / fpr[keep], label=label, lw=1.2)
  grid = np.linspace(0.01, 1, 100)
  ax.plot(grid, 1 / grid, ":", color="grey", lw=1, label="random guess")
  for label, (fpr, tpr) in (working_points or {}).items():
    ax.plot([tpr], [1 / fpr], "o", ms=6, label=label, zorder=3)
  ax.set(xlabel="signal efficiency (true positive rate)",
         ylabel="background rejection 1 / (false positive rate)", yscale="log", xlim=(0, 1))
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7)
  if title:
    ax.set_title(title, fontsize=10)
  return fig


def _edges(samples: Sequence[np.ndarray], bins: Bins) -> np.ndarray:
  """``bins`` itself if it is a sequence of edges, else ``bins`` equal bins between the 0.1
  and 99.9 percentiles of all ``samples`` together."""
  if np.ndim(bins) == 1:
    return np.asarray(bins, np.float64)
  if int(bins) < 1:
    raise ValueError(f"bins must be a positive number or a sequence of edges, got {bins!r}")
  lo, hi = np.percentile(np.concatenate([np.ravel(s) for s in samples]), [0.1, 99.9])
  return np.linspace(lo, hi if hi > lo else lo + 1, int(bins) + 1)


def _hist_panel(ax: Axes, rax: Optional[Axes], samples: Mapping, edges: np.ndarray, name: str,
                unit: str, density: bool, ratio_to: Optional[str]) -> None:
  """Step histograms with error bars of ``samples`` (label -> (values, weights)) on ``ax``;
  on ``rax``, each sample's ratio to ``samples[ratio_to]`` with propagated uncertainties."""
  centres, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
  drawn = {}
  for k, (label, (values, weights)) in enumerate(samples.items()):
    h, err = binned(values, edges, weights, density)
    ax.stairs(h, edges, color=f"C{k}", label=label)
    ax.errorbar(centres, h, yerr=err, fmt="none", ecolor=f"C{k}", elinewidth=0.8)
    drawn[label] = (k, h, err)
  if density:
    ax.set_ylabel(f"1/N dN/dx [1/{unit}]" if unit else "1/N dN/dx", fontsize=7)
  else:
    ax.set_ylabel("events per bin", fontsize=7)
  ax.tick_params(labelsize=6)
  axis = ax if rax is None else rax
  axis.set_xlabel(_label(name, unit), fontsize=8)
  if rax is None:
    return
  ax.tick_params(labelbottom=False)
  _, ref, ref_err = drawn[ratio_to]
  with np.errstate(divide="ignore", invalid="ignore"):
    for label, (k, h, err) in drawn.items():
      if label == ratio_to:
        continue
      ratio = h / ref
      ratio_err = np.sqrt((err / ref) ** 2 + (h * ref_err / ref ** 2) ** 2)
      rax.errorbar(centres, ratio, yerr=ratio_err, xerr=half, fmt="o", ms=1.5, color=f"C{k}",
                   elinewidth=0.8)
      finite = ratio[np.isfinite(ratio)]
      top = np.percentile(finite, 90) if finite.size else 1.0
  rax.set_ylim(0, float(np.clip(1.2 * top, 2.0, 5.0)))
  rax.axhline(1.0, color="grey", lw=0.8, ls=":")
  others = [label for label in drawn if label != ratio_to]
  rax.set_ylabel(f"{others[0]} / {ratio_to}" if len(others) == 1 else f"ratio to {ratio_to}",
                 fontsize=6)
  rax.tick_params(labelsize=6)


def histogram(samples: Mapping, bins: Bins = 40, *, xlabel: str, unit: str = "",
              weights: Optional[Mapping] = None, density: bool = True,
              ratio_to: Optional[str] = None, title: str = "") -> Figure:
  """Histograms of one variable for several samples, with uncertainties and a ratio panel.

  Args:
    samples: label -> values ``(n,)``.
    bins: number of equal bins between the 0.1 and 99.9 percentiles, or the edges.
    xlabel, unit: the variable's name and unit (``""`` if dimensionless).
    weights: label -> per-value weights ``(n,)`` (default 1).
    density: normalise each sample to unit area (else counts per bin).
    ratio_to: a label: adds a panel with every other sample divided by this one.
    title: figure title.

  >>> import numpy as np
  >>> from jaxphys import plots
  >>> rng = np.random.default_rng(0)
  >>> fig = plots.histogram({"bkg": rng.exponential(50, 1000), "sig": rng.normal(120, 20, 500)},
  ...                       xlabel="mass", unit="GeV", ratio_to="bkg")
  >>> [ax.get_xlabel() for ax in fig.axes]
  ['', 'mass [GeV]']
  """
  weights = weights or {}
  if ratio_to is not None and ratio_to not in samples:
    raise ValueError(f"ratio_to must be one of the samples {list(samples)}, got {ratio_to!r}")
  edges = _edges(list(samples.values()), bins)
  fig = _figure(figsize=(4.6, 4.0 if ratio_to else 3.2))
  if ratio_to is None:
    ax, rax = fig.subplots(), None
  else:
    ax, rax = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
  _hist_panel(ax, rax, {k: (v, weights.get(k)) for k, v in samples.items()}, edges, xlabel,
              unit, density, ratio_to)
  ax.legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  return fig


def class_histograms(x: ArrayLike, y: ArrayLike, names: Sequence[str], *,
                     units: Optional[Sequence[str]] = None,
                     class_names: Sequence[str] = ("background", "signal"),
                     weights: Optional[ArrayLike] = None, bins: Bins = 40, ncols: int = 6,
                     ratio: bool = True, title: str = "") -> Figure:
  """Normalised histograms of every column of ``x`` ``(n, k)`` for each class of ``y`` ``(n,)``.

  One panel per column, binned between its 0.1 and 99.9 percentiles, with
  :math:`\\sqrt{\\sum w^2}` error bars and (``ratio=True``) a panel of each class over
  class 0 beneath. ``units`` gives each column's unit (``"GeV"``, ``"rad"``, ``""`` for
  dimensionless); ``weights`` ``(n,)`` are per-event weights.

  >>> import numpy as np
  >>> from jaxphys import plots
  >>> rng = np.random.default_rng(0)
  >>> x, y = rng.normal(size=(400, 3)), np.arange(400) % 2
  >>> fig = plots.class_histograms(x, y, ["pT", "eta", "phi"], units=["GeV", "", "rad"])
  >>> len(fig.axes)  # a histogram and a ratio panel per column
  6
  """
  x, y = np.asarray(x), np.asarray(y).ravel()
  if x.ndim != 2 or len(x) != len(y):
    raise ValueError(f"x must be (n, k) with n = len(y) = {len(y)}, got shape {x.shape}")
  k = x.shape[1]
  units = [""] * k if units is None else list(units)
  if len(names) != k or len(units) != k:
    raise ValueError(f"names ({len(names)}) and units ({len(units)}) need one entry per column "
                     f"of x ({k})")
  w = None if weights is None else np.asarray(weights, np.float64).ravel()
  labels = {c: str(class_names[c]) for c in range(len(class_names)) if np.any(y == c)}
  ncols = max(1, min(ncols, k))
  nrows = -(-k // ncols)
  fig = _figure(figsize=(2.5 * ncols, (2.6 if ratio else 2.0) * nrows))
  cells = fig.subfigures(nrows, ncols, squeeze=False).flat
  for j, cell in zip(range(k), cells):
    samples = {name: (x[y == c, j], None if w is None else w[y == c]) for c, name in labels.items()}
    edges = _edges([v for v, _ in samples.values()], bins)
    if ratio and len(samples) > 1:
      ax, rax = cell.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    else:
      ax, rax = cell.subplots(), None
    _hist_panel(ax, rax, samples, edges, names[j], units[j], True,
                next(iter(samples)) if rax is not None else None)
    if j == 0:
      ax.legend(fontsize=6)
  if title:
    fig.suptitle(title, fontsize=10)
  return fig


def save_image_grid(path: PathLike, images: ArrayLike, titles: Optional[Sequence[str]] = None,
                    ncols: int = 10, title: str = "") -> Path:
  """:func:`image_grid` written to ``path`` (PNG); returns the path.

  >>> import numpy as np, tempfile
  >>> from jaxphys import plots
  >>> plots.save_image_grid(tempfile.mkdtemp() + "/g.png", np.eye(8)[None]).name
  'g.png'
  """
  return save_figure(image_grid(images, titles, ncols, title), path)


def save_learning_curves(path: PathLike, history: Mapping, title: str = "") -> Path:
  """:func:`learning_curves` written to ``path`` (PNG); returns the path.

  >>> import numpy as np, tempfile
  >>> from jaxphys import plots
  >>> plots.save_learning_curves(tempfile.mkdtemp() + "/c.png", {"train_loss": np.ones(3)}).name
  'c.png'
  """
  return save_figure(learning_curves(history, title), path)


def save_confusion_matrix(path: PathLike, matrix: ArrayLike, class_names: Sequence[str],
                          title: str = "") -> Path:
  """:func:`confusion_matrix` written to ``path`` (PNG); returns the path.

  >>> import tempfile
  >>> from jaxphys import plots
  >>> plots.save_confusion_matrix(tempfile.mkdtemp() + "/m.png", [[3, 1], [0, 2]], "ab").name
  'm.png'
  """
  return save_figure(confusion_matrix(matrix, class_names, title), path)


def save_roc_curves(path: PathLike, curves: Mapping, title: str = "",
                    working_points: Optional[Mapping] = None) -> Path:
  """:func:`roc_curves` written to ``path`` (PNG); returns the path.

  >>> import tempfile
  >>> from jaxphys import plots
  >>> plots.save_roc_curves(tempfile.mkdtemp() + "/r.png", {"a": ([0, .1, 1], [0, .8, 1])}).name
  'r.png'
  """
  return save_figure(roc_curves(curves, title, working_points), path)


def save_class_histograms(path: PathLike, x: ArrayLike, y: ArrayLike, names: Sequence[str],
                          class_names: Sequence[str] = ("background", "signal"), bins: Bins = 40,
                          ncols: int = 6, title: str = "", *, units: Optional[Sequence[str]] = None,
                          weights: Optional[ArrayLike] = None, ratio: bool = True) -> Path:
  """:func:`class_histograms` written to ``path`` (PNG); returns the path.

  >>> import numpy as np, tempfile
  >>> from jaxphys import plots
  >>> x, y = np.random.default_rng(0).normal(size=(100, 1)), np.arange(100) % 2
  >>> plots.save_class_histograms(tempfile.mkdtemp() + "/h.png", x, y, ["MET"], units=["GeV"]).name
  'h.png'
  """
  fig = class_histograms(x, y, names, units=units, class_names=class_names, weights=weights,
                         bins=bins, ncols=ncols, ratio=ratio, title=title)
  return save_figure(fig, path)
