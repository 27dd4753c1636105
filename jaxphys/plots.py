"""PNG figures for experiments (needs matplotlib: ``pip install jaxphys[plots]``).

Every function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from jaxphys._io import atomic_write_bytes

__all__ = ["save_image_grid", "save_learning_curves", "save_confusion_matrix", "save_roc_curves",
           "save_class_histograms"]


def _figure(*args, **kwargs):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt, plt.subplots(*args, **kwargs)


def _save(plt, fig, path) -> Path:
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
  plt.close(fig)
  path = Path(path)
  atomic_write_bytes(path, buf.getvalue())
  return path


def save_image_grid(path, images, titles: Optional[Sequence[str]] = None, ncols: int = 10,
                    title: str = "") -> Path:
  """Grid of grey-scale ``images`` ``(n, H, W[, 1])`` (any range) with optional titles."""
  images = np.asarray(images)
  images = images[..., 0] if images.ndim == 4 else images
  n = max(len(images), 1)
  ncols = min(ncols, n)
  nrows = -(-n // ncols)
  plt, (fig, axes) = _figure(nrows, ncols, figsize=(1.2 * ncols, 1.3 * nrows + 0.4), squeeze=False)
  for i, ax in enumerate(axes.flat):
    ax.axis("off")
    if i < len(images):
      ax.imshow(images[i], cmap="gray_r", interpolation="nearest")
      if titles is not None:
        ax.set_title(titles[i], fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  return _save(plt, fig, path)


def save_learning_curves(path, history: dict, title: str = "") -> Path:
  """Train loss and train/test accuracy per epoch from a :func:`jaxphys.fit` history."""
  plt, (fig, (ax1, ax2)) = _figure(1, 2, figsize=(9, 3.4))
  epochs = np.arange(1, len(history["train_loss"]) + 1)
  ax1.plot(epochs, history["train_loss"], label="train")
  if "eval_loss" in history:
    ax1.plot(epochs, history["eval_loss"], label="test")
  ax1.set(xlabel="epoch", ylabel="cross-entropy (nats)", yscale="log")
  ax1.legend()
  if "train_accuracy" in history:
    ax2.plot(epochs, history["train_accuracy"], label="train")
  if "eval_accuracy" in history:
    ax2.plot(epochs, history["eval_accuracy"], label="test")
  ax2.set(xlabel="epoch", ylabel="accuracy")
  ax2.legend()
  if title:
    fig.suptitle(title, fontsize=10)
  return _save(plt, fig, path)


def save_confusion_matrix(path, matrix, class_names: Sequence[str], title: str = "") -> Path:
  """Confusion matrix ``(C, C)`` (rows true, columns predicted) with counts."""
  matrix = np.asarray(matrix)
  c = len(class_names)
  plt, (fig, ax) = _figure(figsize=(0.55 * c + 2, 0.55 * c + 1.5))
  ax.imshow(np.log1p(matrix), cmap="Blues")
  for i in range(c):
    for j in range(c):
      ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
              color="white" if matrix[i, j] > matrix.max() / 2 else "black")
  ax.set_xticks(range(c), class_names, rotation=90, fontsize=7)
  ax.set_yticks(range(c), class_names, fontsize=7)
  ax.set(xlabel="predicted", ylabel="true")
  if title:
    ax.set_title(title, fontsize=10)
  return _save(plt, fig, path)


def save_roc_curves(path, curves: dict, title: str = "") -> Path:
  """ROC curves as signal efficiency against background rejection ``1 / fpr`` (log scale).

  ``curves`` maps a label to ``(fpr, tpr)`` arrays (e.g. from :func:`jaxphys.roc_curve`).
  """
  plt, (fig, ax) = _figure(figsize=(5.5, 4.2))
  for label, (fpr, tpr) in curves.items():
    fpr, tpr = np.asarray(fpr), np.asarray(tpr)
    keep = fpr > 0
    ax.plot(tpr[keep], 1 / fpr[keep], label=label, lw=1.2)
  ax.set(xlabel="signal efficiency (TPR)", ylabel="background rejection 1 / FPR", yscale="log",
         xlim=(0, 1))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  if title:
    ax.set_title(title, fontsize=10)
  return _save(plt, fig, path)


def save_class_histograms(path, x, y, names: Sequence[str], class_names=("background", "signal"),
                          bins: int = 60, ncols: int = 6, title: str = "") -> Path:
  """Normalised histograms of every column of ``x`` ``(n, k)`` for each class of ``y`` ``(n,)``.

  Binned between the 0.1 and 99.9 percentiles of each column.
  """
  x, y = np.asarray(x), np.asarray(y)
  k = x.shape[1]
  nrows = -(-k // ncols)
  plt, (fig, axes) = _figure(nrows, ncols, figsize=(2.6 * ncols, 2.0 * nrows), squeeze=False)
  for j, ax in enumerate(axes.flat):
    if j >= k:
      ax.axis("off")
      continue
    lo, hi = np.percentile(x[:, j], [0.1, 99.9])
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    for c, label in enumerate(class_names):
      ax.hist(x[y == c, j], edges, density=True, histtype="step", label=label)
    ax.set_title(names[j], fontsize=8)
    ax.tick_params(labelsize=6)
  axes.flat[0].legend(fontsize=6)
  if title:
    fig.suptitle(title, fontsize=10)
  return _save(plt, fig, path)
