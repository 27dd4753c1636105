"""Smoke runs of the experiments on tiny generated data: outputs exist and are well formed."""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxphys.checkpoint import load_params
from jaxphys.data import write_idx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import mnist  # noqa: E402
import quickstart  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
  """60 train / 30 test 28x28 images: a bright square whose position encodes the class."""
  d = tmp_path_factory.mktemp("tiny_mnist")
  rng = np.random.default_rng(0)
  for split, n in (("train", 60), ("t10k", 30)):
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
      r, col = 4 + 2 * (c // 5) * 5, 2 + 5 * (c % 5)
      images[i, r:r + 6, col:col + 4] = 255
    write_idx(d / f"{split}-images-idx3-ubyte.gz", images)
    write_idx(d / f"{split}-labels-idx1-ubyte.gz", labels)
  return d


def _check_run(out: Path, model: str, augmentation: str, epochs: int):
  r = json.loads((out / "results.json").read_text())
  for key in ("dataset", "model", "augment", "epochs", "test_accuracy", "train_seconds",
              "images_per_second", "compile_seconds", "seed", "history", "per_class",
              "confusion_matrix", "environment"):
    assert key in r, key
  assert (r["model"], r["augmentation"], r["epochs"], r["dataset"]) == (model, augmentation, epochs, "mnist")
  assert r["augment"] == (augmentation != "none")
  assert 0.0 <= r["test_accuracy"] <= 1.0 and r["images_per_second"] > 0
  assert len(r["history"]["train_loss"]) == epochs == len(r["history"]["test_accuracy"])
  assert len(r["per_class"]["precision"]) == 10 == len(r["per_class"]["auc"])
  assert np.asarray(r["confusion_matrix"]).sum() == r["n_test"] == 30
  for png in ("learning_curves.png", "confusion_matrix.png", "misclassified.png", "augmented.png"):
    assert (out / png).read_bytes()[:8] == PNG, png
  template = mnist.build_model(mnist.get_config(model), 10).init(
      jax.random.key(0), jnp.ones((1, 28, 28, 1)))["params"]
  load_params(out / "params.msgpack", template)
  return r


def test_single_model_run_writes_well_formed_outputs(tiny_mnist, tmp_path, capsys):
  out = tmp_path / "cnn"
  mnist.main(["--dataset", "mnist", "--data-dir", str(tiny_mnist), "--model", "cnn", "--augment",
              "--epochs", "2", "--batch-size", "16", "--out", str(out), "--quiet"])
  assert capsys.readouterr().out == ""  # --quiet: nothing on stdout
  _check_run(out, "cnn", "full", 2)


def test_ladder_runs_every_rung_and_learns(tiny_mnist, tmp_path, capsys):
  rows = mnist.main(["--data-dir", str(tiny_mnist), "--epochs", "3", "--batch-size", "20",
                     "--lr", "0.01", "--out", str(tmp_path)])
  printed = capsys.readouterr().out
  assert "| softmax + shift |" in printed and "| cnn + shift |" in printed
  assert "| cnn + full |" in printed
  used = [(r["model"], r["augmentation"]) for r in rows]
  assert used == [(m, a or mnist.get_config(m).augmentation) for m, a in mnist.LADDER]
  assert len(json.loads((tmp_path / "ladder.json").read_text())) == 4
  for model, aug in used:
    _check_run(tmp_path / f"{model}_{aug}", model, aug, 3)
  # The class is a bright square's position: softmax regression learns it at once.
  assert rows[0]["test_accuracy"] >= 0.9


def test_quickstart_runs(capsys):
  results = quickstart.main(["--epochs", "2", "--quiet"])
  assert capsys.readouterr().out == ""
  assert set(results) == {"logistic", "softmax_l2_sweep", "mlp", "cnn"}
  assert results["mlp"]["accuracy"] > 0.5


def test_train_and_evaluate_is_a_complete_entry_point(tiny_mnist, tmp_path):
  config = mnist.get_config("softmax", epochs=2, batch_size=16, data_dir=str(tiny_mnist))
  r = mnist.train_and_evaluate(config, tmp_path, quiet=True)
  assert r["config"]["data_dir"] == str(tiny_mnist) and (tmp_path / "results.json").is_file()
