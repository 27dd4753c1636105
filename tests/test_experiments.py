"""Smoke runs of the experiments on tiny generated data: outputs exist and are well formed."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxphys.checkpoint import load_params
from jaxphys.data import write_idx, write_susy
from jaxphys.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import mnist  # noqa: E402
import quickstart  # noqa: E402
import susy  # noqa: E402

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
  # The per-class table: one line per class with precision / recall / AUC for each rung.
  per_class = [line for line in printed.splitlines() if line.startswith("| 0 |")]
  assert len(per_class) == 1 and per_class[0].count(" / ") == 2 * 4
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


def test_mnist_checkpoints_and_resumes_to_the_same_result(tiny_mnist, tmp_path):
  args = ["--data-dir", str(tiny_mnist), "--model", "mlp", "--batch-size", "16", "--quiet"]
  args += ["--epochs", "4"]
  full = mnist.main(args + ["--out", str(tmp_path / "full")])[0]
  # A run that lost its last epoch (as if killed during it), then resumed.
  cut = mnist.main(args + ["--checkpoint-every", "1", "--out", str(tmp_path / "cut")])[0]
  ckpts = tmp_path / "cut" / "checkpoints"
  assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())[-2:] == [3, 4]
  shutil.rmtree(ckpts / "4")
  (tmp_path / "cut" / "results.json").unlink()
  resumed = mnist.main(args + ["--checkpoint-every", "1", "--resume", "--out", str(tmp_path / "cut")])[0]
  # Epochs 1-3 come from the checkpoint (their recorded times too), epoch 4 is recomputed.
  assert resumed["history"]["epoch_seconds"][:3] == cut["history"]["epoch_seconds"][:3]
  assert resumed["history"]["epoch_seconds"][3] != cut["history"]["epoch_seconds"][3]
  assert resumed["history"]["train_loss"] == full["history"]["train_loss"]
  assert resumed["test_accuracy"] == full["test_accuracy"]
  env = resumed["environment"]
  assert {"jax", "jaxlib", "flax", "optax", "numpy", "jaxphys", "device"} <= set(env)


def test_mnist_divergence_is_one_line_exit_2_and_recorded(tiny_mnist, tmp_path):
  out = tmp_path / "run"
  cmd = [sys.executable, str(Path(__file__).resolve().parents[1] / "experiments" / "mnist.py"),
         "--data-dir", str(tiny_mnist), "--model", "mlp", "--lr", "1e12", "--epochs", "3",
         "--batch-size", "16", "--checkpoint-every", "1", "--out", str(out), "--quiet"]
  done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  assert done.returncode == 2, done.stderr
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1 and "training diverged at epoch" in lines[0] and "learning rate" in lines[0]
  r = json.loads((out / "results.json").read_text())
  assert "diverged" in r["failure"] and r["step"] >= 1 and "test_accuracy" not in r


# --- experiments/susy.py ------------------------------------------------------------------

def _susy_file(path, n=4000, seed=0):
  """A SUSY-format file whose label shifts the first feature by one standard deviation."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  x = rng.normal(size=(n, 18))
  x[:, 0] += 2.0 * y
  return write_susy(path, x, y)


def test_susy_simulated_run_writes_every_model_and_output(tmp_path, capsys):
  out = tmp_path / "susy"
  susy.main(["--simulate", "3000", "--features", "high", "--seeds", "2", "--epochs", "1",
             "--tree-rounds", "5", "--out", str(out), "--quiet"])
  assert capsys.readouterr().out == ""
  r = json.loads((out / "results.json").read_text())
  assert r["data"]["n_train"] == 2400 and r["data"]["n_test"] == 300
  for model in susy.MODELS:
    auc = r["auc"][model]["high"]
    assert len(auc["values"]) == 2 and 0.0 < auc["mean"] < 1.0
    np.testing.assert_allclose(auc["mean"], np.mean(auc["values"]), rtol=1e-6)
    for metric in ("accuracy", "significance", "signal_efficiency@fpr=0.1"):
      assert len(r[metric][model]["high"]["values"]) == 2
  assert r["published_auc"]["deep NN"] == {"low": 0.872, "high": 0.865, "all": 0.876}
  for png in ("roc_high.png", "features.png"):
    assert (out / png).read_bytes().startswith(PNG)


def test_susy_on_a_data_file_learns_and_is_reproducible(tmp_path):
  path = _susy_file(tmp_path / "SUSY.csv.gz")
  args = ["--data", str(path), "--models", "logreg", "trees", "--features", "low", "all",
          "--seeds", "3", "--epochs", "10", "--batch-size", "64", "--tree-rounds", "20", "--quiet"]
  r = susy.main(args + ["--out", str(tmp_path / "a")])
  # The label moves one low-level feature by 2 sigma: AUC = Phi(2 / sqrt(2)) = 0.921.
  for model in ("logreg", "trees"):
    for fs in ("low", "all"):
      assert r["auc"][model][fs]["mean"] > 0.88, (model, fs)
  assert r["checks"] == {}  # needs the deep network
  again = susy.main(args + ["--out", str(tmp_path / "b")])
  assert again["auc"] == r["auc"]
  # The split is the file's: the last 10 % of rows are the test set.
  assert r["data"]["n_test"] == 400 and r["data"]["n_train"] == 3200


def test_susy_networks_checkpoint_and_resume(tmp_path):
  path = _susy_file(tmp_path / "SUSY.csv.gz")
  args = ["--data", str(path), "--models", "logreg", "--features", "low", "--seeds", "2",
          "--epochs", "3", "--batch-size", "64", "--quiet", "--out", str(tmp_path / "a")]
  first = susy.main(args + ["--checkpoint-every", "1"])
  ckpts = tmp_path / "a" / "checkpoints" / "logreg_low"
  shutil.rmtree(ckpts / "3")  # as if killed during the last epoch
  resumed = susy.main(args + ["--checkpoint-every", "1", "--resume"])
  assert resumed["auc"] == first["auc"]
  assert resumed["models"]["logreg"]["low"]["valid_loss"] == first["models"]["logreg"]["low"]["valid_loss"]
  # The checkpoints are really read: another seed's run refuses them.
  with pytest.raises(DataError, match="different key"):
    susy.main(args + ["--resume", "--seed", "1"])


def test_susy_rejects_bad_arguments(tmp_path):
  with pytest.raises(SystemExit):
    susy.main(["--simulate", "100", "--data", "x.csv", "--out", str(tmp_path)])
  with pytest.raises(ValueError, match="seeds"):
    susy.train_and_evaluate(susy.Config(simulate=100, seeds=0), tmp_path)


@pytest.mark.parametrize("script,args,message", [
    ("susy.py", ["--data", "{tmp}/missing.csv"], "no such file"),
    ("susy.py", ["--data", "{tmp}/bad.csv"], "bad.csv:2: expected 19 columns, found 3"),
    ("mnist.py", ["--data-dir", "{tmp}/empty", "--no-download", "--model", "softmax"], "mnist"),
])
def test_command_line_input_errors_are_one_line_and_exit_2(tmp_path, script, args, message):
  (tmp_path / "bad.csv").write_text("0," + ",".join(["1.0"] * 18) + "\n1,2,3\n")
  (tmp_path / "empty").mkdir()
  out = tmp_path / "out"
  cmd = [sys.executable, str(Path(__file__).resolve().parents[1] / "experiments" / script),
         *[a.format(tmp=tmp_path) for a in args], "--out", str(out), "--quiet"]
  done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  assert done.returncode == 2, done.stderr
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
  assert not out.exists()  # nothing written
  debug = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, timeout=300)
  assert debug.returncode == 1 and "Traceback" in debug.stderr
