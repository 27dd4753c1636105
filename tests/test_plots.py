"""jaxphys.plots: figures render to PNG with the structure a reader needs: axis labels with
units, the expected panels, statistical error bars; `binned` against a direct count."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.container import ErrorbarContainer  # noqa: E402

from jaxphys import plots  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _errorbars(ax):
  return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_binned_matches_a_direct_count_with_weights():
  rng = np.random.default_rng(1)
  values, weights = rng.normal(size=500), rng.uniform(0.5, 2.0, 500)
  edges = np.linspace(-2, 2, 9)
  heights, errors = plots.binned(values, edges, weights)
  for b in range(8):
    last = b == 7  # numpy's last bin is closed on the right
    inside = (values >= edges[b]) & ((values <= edges[b + 1]) if last else (values < edges[b + 1]))
    np.testing.assert_allclose(heights[b], weights[inside].sum())
    np.testing.assert_allclose(errors[b], np.sqrt(np.sum(weights[inside] ** 2)))


def test_binned_density_integrates_to_one_and_scales_errors_alike():
  values = np.random.default_rng(2).exponential(size=1000)
  edges = np.array([0.0, 0.5, 1.0, 2.0, 20.0])
  counts, count_err = plots.binned(values, edges)
  heights, errors = plots.binned(values, edges, density=True)
  np.testing.assert_allclose(np.sum(heights * np.diff(edges)), 1.0)
  np.testing.assert_allclose(errors, np.sqrt(counts) / (counts.sum() * np.diff(edges)))
  np.testing.assert_allclose(count_err, np.sqrt(counts))


@pytest.mark.parametrize("edges", [[1.0], [0.0, 1.0, 1.0], [[0.0, 1.0]]])
def test_binned_rejects_bad_edges_in_one_line(edges):
  with pytest.raises(ValueError, match="^edges must be") as e:
    plots.binned([0.5], edges)
  assert "\n" not in str(e.value)


def test_class_histograms_have_units_error_bars_and_ratio_panels(tmp_path):
  rng = np.random.default_rng(0)
  x = np.column_stack([rng.exponential(40, 600), rng.normal(0, 1, 600), rng.uniform(-3, 3, 600)])
  y = np.arange(600) % 2
  fig = plots.class_histograms(x, y, ["lepton pT", "eta", "phi"], units=["GeV", "", "rad"], ncols=2)
  axes = fig.axes
  assert len(axes) == 6  # a histogram and a ratio panel for each of 3 columns
  hists, ratios = axes[0::2], axes[1::2]
  assert [ax.get_xlabel() for ax in ratios] == ["lepton pT [GeV]", "eta", "phi [rad]"]
  assert hists[0].get_ylabel() == "1/N dN/dx [1/GeV]"
  assert all(len(_errorbars(ax)) == 2 for ax in hists)  # one per class
  assert all(len(_errorbars(ax)) == 1 for ax in ratios)
  assert ratios[0].get_ylabel() == "signal / background"
  path = plots.save_figure(fig, tmp_path / "features.png")
  assert path.read_bytes()[:8] == PNG_MAGIC


def test_ratio_panel_shows_the_ratio_and_its_propagated_uncertainty():
  edges = np.array([0.0, 1.0, 2.0])
  bkg = np.array([0.5] * 4 + [1.5] * 9)  # 4 and 9 entries
  sig = np.array([0.5] * 1 + [1.5] * 4)  # 1 and 4 entries
  fig = plots.histogram({"bkg": bkg, "sig": sig}, edges, xlabel="x", unit="GeV", density=False,
                        ratio_to="bkg")
  (bars,) = _errorbars(fig.axes[1])
  line, _, (*_, vertical) = bars  # x bars (bin widths), then y bars
  np.testing.assert_allclose(line.get_ydata(), [1 / 4, 4 / 9])
  segments = vertical.get_segments()
  half = [(s[1][1] - s[0][1]) / 2 for s in segments]
  # sigma(s/b) = sqrt(s/b^2 + s^2/b^3) for Poisson s and b
  np.testing.assert_allclose(half, [np.sqrt(1 / 16 + 1 / 64), np.sqrt(4 / 81 + 16 / 729)])
  assert fig.axes[0].get_ylabel() == "events per bin"


def test_learning_curves_panels_units_and_integer_epochs(tmp_path):
  history = {"train_loss": np.array([0.9, 0.5, 0.4, 0.35]), "eval_loss": np.array([1.0, 0.6, 0.5, 0.5]),
             "train_accuracy": np.array([0.6, 0.8, 0.85, 0.9]),
             "eval_accuracy": np.array([0.5, 0.7, 0.8, 0.8]), "learning_rate": np.full(4, 1e-3),
             "epoch_seconds": np.ones(4)}
  fig = plots.learning_curves(history)
  loss, acc, lr = fig.axes
  assert loss.get_ylabel() == "cross-entropy [nats per example]"
  assert [ax.get_xlabel() for ax in fig.axes] == ["epoch"] * 3
  fig.canvas.draw()
  ticks = [t for t in loss.get_xticks() if 1 <= t <= 4]
  assert ticks and all(float(t).is_integer() for t in ticks)
  assert len(loss.get_lines()) == 2 and list(loss.get_lines()[0].get_xdata()) == [1, 2, 3, 4]
  assert plots.save_learning_curves(tmp_path / "c.png", history).read_bytes()[:8] == PNG_MAGIC


def test_learning_curves_of_k_runs_draw_one_line_per_run_and_split():
  history = {"train_loss": np.ones((3, 4)), "eval_loss": np.ones((3, 4))}
  assert len(plots.learning_curves(history).axes[0].get_lines()) == 8


def test_augmentation_grid_shows_one_column_per_class_even_when_sorted():
  labels = np.repeat(np.arange(5), 20)  # sorted by class, as MNIST-5k
  images = np.random.default_rng(0).random((100, 8, 8, 1))
  fig = plots.augmentation_grid(images, images[None].repeat(2, 0), labels,
                                class_names=list("abcde"), max_classes=4)
  assert len(fig.axes) == 3 * 4
  assert [ax.get_title() for ax in fig.axes[:4]] == ["a", "b", "c", "d"]
  assert [fig.axes[4 * r].get_ylabel() for r in range(3)] == ["original", "augmented 1",
                                                              "augmented 2"]
  np.testing.assert_array_equal(fig.axes[1].get_images()[0].get_array(), images[20, ..., 0])


def test_augmentation_grid_rejects_mismatched_shapes_in_one_line():
  with pytest.raises(ValueError, match="must match images") as e:
    plots.augmentation_grid(np.zeros((4, 8, 8)), np.zeros((3, 8, 8)), np.arange(4))
  assert "\n" not in str(e.value)


def test_roc_curves_confusion_matrix_and_image_grid_render(tmp_path):
  fig = plots.roc_curves({"a": ([0.0, 0.1, 0.5, 1.0], [0.0, 0.6, 0.9, 1.0])},
                         working_points={"TPR 0.9": (0.5, 0.9)})
  ax = fig.axes[0]
  assert ax.get_yscale() == "log" and "signal efficiency" in ax.get_xlabel()
  assert len(ax.get_lines()) == 3  # the curve, the random guess, the working point
  assert plots.save_roc_curves(tmp_path / "r.png", {"a": ([0, 0.5, 1], [0, 0.9, 1])}).exists()
  fig = plots.confusion_matrix(np.array([[8, 2], [1, 9]]), ["b", "s"])
  assert len(fig.axes) == 2  # the matrix and its colour bar
  assert plots.save_confusion_matrix(tmp_path / "m.png", [[8, 2], [1, 9]], ["b", "s"]).exists()
  assert len(plots.image_grid(np.zeros((7, 4, 4)), ncols=3).axes) == 9
  with pytest.raises(ValueError, match="^images must be"):
    plots.image_grid(np.zeros((2, 4, 4, 3)))


def test_class_histograms_rejects_missing_units_in_one_line():
  with pytest.raises(ValueError, match=r"^names \(2\) and units \(1\)"):
    plots.class_histograms(np.zeros((10, 2)), np.zeros(10), ["a", "b"], units=["GeV"])
