"""The experiments end to end on tiny data: their published outputs, model selection on the
validation split, resumption (and its refusal when a setting changed), and failures that
leave the previous result untouched."""

import json
import math
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiment_data import write_tiny_mnist
from jaxphys import mixed_precision as mp
from jaxphys.checkpoint import load_model, load_params
from jaxphys.experiments import base, mnist, quickstart, susy
from jaxphys.experiments.susy_models import build_network
from jaxphys.runs import published_results

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  return write_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


def _published(out: Path) -> tuple[Path, dict]:
  where = published_results(out)
  return where, json.loads((where / "results.json").read_text())


def _run_mnist(tiny, out, *flags) -> int:
  return mnist.main(["--data-dir", str(tiny), "--out", str(out), *TINY, *flags])


def test_mnist_run_publishes_every_output(tiny, tmp_path):
  out = tmp_path / "cnn"
  assert _run_mnist(tiny, out, "--model", "cnn", "--augment", "--epochs", "2") == 0
  where, r = _published(out)
  assert (r["model"], r["augmentation"], r["epochs"], r["n_train"] + r["n_valid"]) == ("cnn", "full", 2, 60)
  assert r["n_valid"] == 6 and r["n_test"] == 30 and np.asarray(r["confusion_matrix"]).sum() == 30
  assert r["selected"]["monitor"] == "eval_loss"
  valid_loss = r["history"]["eval_loss"]
  assert r["selected"]["epoch"] == 1 + int(np.argmin(valid_loss)) and len(valid_loss) == 2
  env = r["environment"]
  assert {"jax", "jaxlib", "flax", "optax", "numpy", "device", "command", "git", "compiler"} <= set(env)
  assert env["git"] is None or len(env["git"]["commit"]) == 40
  cnn = env["compiler"]["programs"]["cnn"]  # what the trainer's backend chose, per pass
  assert cnn["train"] == _planned_for_conv_model() and set(cnn) == {"train", "eval"}
  assert "compilation" not in r["history"]
  for png in ("learning_curves.png", "confusion_matrix.png", "misclassified.png", "augmented.png"):
    assert (where / png).read_bytes()[:8] == PNG, png
  header = (where / "metrics.csv").read_text().splitlines()[0]
  assert "eval_accuracy" in header and "train_loss" in header and "learning_rate" in header
  lr = r["history"]["learning_rate"]
  assert len(lr) == 2 and lr[0] > lr[1] > 0.0  # the rate of each epoch's last step: decaying
  assert len((where / "metrics.csv").read_text().splitlines()) == 3
  assert any(p.name.startswith("events.out.tfevents") for p in (where / "tensorboard").rglob("*"))
  log = (where / "log.txt").read_text()
  assert "epoch 1/2" in log and "epoch 2/2" in log and "test accuracy" in log
  template = mnist.build_model(mnist.resolve(mnist.Config(), "cnn"), 10).init(
      jax.random.key(0), jnp.ones((1, 28, 28, 1)))["params"]
  load_params(where / "params.msgpack", template)
  predictor = load_model(where / "model")  # inference without the experiment's code
  assert predictor(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 10)


def programs_of(results: dict) -> list:
  return [name for name in results["models"] if name != "trees"]


def _planned_for_conv_model(precision: str = "float32") -> dict:
  """The backend's plan for a convolutional program, asked of it directly, in
  ``precision`` (the experiments' float32 unless given)."""
  from jaxphys.train import _backend
  jaxpr = jax.make_jaxpr(lambda x: jax.lax.conv(x, x, (1, 1), "SAME"))(jnp.ones((1, 1, 3, 3))).jaxpr
  loop, options = _backend.plan(jaxpr)
  return {"backend": jax.default_backend(), "loop": loop, "xla_options": options, "precision": precision}


def test_resnet_trains_with_batch_statistics(tiny, tmp_path):
  out = tmp_path / "resnet"
  assert _run_mnist(tiny, out, "--model", "resnet", "--epochs", "1", "--resnet-features", "4", "8",
                    "--precision", "bfloat16") == 0
  where, r = _published(out)
  assert r["config"]["resnet_features"] == [4, 8] and (where / "model_state.msgpack").is_file()
  assert (r["config"]["optimizer"], r["config"]["lr"]) == ("sgd", 0.1)  # the ResNet's preset
  assert 0.0 <= r["test_accuracy"] <= 1.0
  programs = r["environment"]["compiler"]["programs"]["resnet"]
  assert programs["train"]["precision"] == programs["eval"]["precision"] == "bfloat16"


@pytest.mark.parametrize("name", base.OPTIMIZERS)
def test_optimizers_are_optax_with_the_logged_schedule(name):
  """build_optimizer's updates equal optax's own Adam / Nesterov SGD on the same schedule."""
  config = mnist.resolve(mnist.Config(optimizer=name, lr=0.1, epochs=4), "mlp")
  tx = mnist.build_optimizer(config, steps_per_epoch=3)
  schedule = optax.warmup_cosine_decay_schedule(0.0, 0.1, 3, 12)
  ref = (optax.sgd(schedule, momentum=0.9, nesterov=True) if name == "sgd" else optax.adam(schedule))
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  state, ref_state, p, q = tx.init(params), ref.init(params), params, params
  for i in range(6):
    grad = {"w": jnp.array([0.5, -1.0, 2.0]) * (i + 1)}
    u, state = tx.update(grad, state, p)
    v, ref_state = ref.update(grad, ref_state, q)
    p, q = optax.apply_updates(p, u), optax.apply_updates(q, v)
    np.testing.assert_allclose(p["w"], q["w"], rtol=1e-5)  # float32 rounding (eager)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(float(schedule(i)))
  assert not np.allclose(p["w"], params["w"])


def test_a_batch_larger_than_the_data_is_one_batch_and_said(tiny, tmp_path):
  assert _run_mnist(tiny, tmp_path, "--model", "softmax", "--epochs", "1", "--batch-size", "1000000000") == 0
  where, r = _published(tmp_path)
  assert r["batch_size"] == 54
  assert "batch_size 1000000000 is larger than the 54 training images" in (where / "log.txt").read_text()


@pytest.mark.slow
def test_ladder_runs_every_rung_and_learns(tiny, tmp_path, capsys):
  flags = ["--data-dir", str(tiny), "--epochs", "3", "--batch-size", "20", "--lr", "0.01",
           "--resnet-features", "4", "8", "--out", str(tmp_path)]
  assert mnist.main(flags) == 0
  printed = capsys.readouterr().out
  assert "| softmax + shift |" in printed and "| cnn + full |" in printed and "| resnet + full |" in printed
  where = published_results(tmp_path)  # the ladder's summary is ladder.json, one folder per rung
  rows = json.loads((where / "ladder.json").read_text())
  assert [(r["model"], r["augmentation"]) for r in rows] == [
      ("softmax", "shift"), ("mlp", "shift"), ("cnn", "shift"), ("cnn", "full"), ("resnet", "full")]
  assert rows[0]["test_accuracy"] >= 0.9  # the class is a bright block's position
  for r in rows:
    assert (where / f"{r['model']}_{r['augmentation']}" / "results.json").is_file()


def test_quickstart_runs_and_publishes_when_given_out(tmp_path, capsys):
  assert quickstart.main(["--epochs", "2", "--quiet", "--out", str(tmp_path)]) == 0
  assert capsys.readouterr().out == ""
  _, r = _published(tmp_path)
  assert {"logistic", "softmax_l2_sweep", "mlp", "cnn", "config", "environment"} <= set(r)
  assert r["mlp"]["accuracy"] > 0.5 and r["config"]["epochs"] == 2
  programs = r["environment"]["compiler"]["programs"]
  assert set(programs) == {"logistic", "softmax_l2_sweep", "mlp", "cnn"}
  # the quickstart trains at the library's defaults: the default precision of a CNN
  assert programs["cnn"]["train"] == _planned_for_conv_model(mp.default_precision(convolves=True))


def test_resume_continues_to_the_uninterrupted_result(tiny, tmp_path):
  flags = ["--model", "mlp", "--epochs", "3", "--checkpoint-every", "1"]
  assert _run_mnist(tiny, tmp_path, *flags) == 0
  _, full = _published(tmp_path)
  (tmp_path / "checkpoints" / "epoch_3.ckpt").unlink()  # as if killed during epoch 3
  assert _run_mnist(tiny, tmp_path, *flags, "--resume") == 0
  _, resumed = _published(tmp_path)
  assert resumed["resume"] == {"resumed_from": 2, "changes": []}
  assert resumed["history"]["train_loss"] == full["history"]["train_loss"]
  assert resumed["test_accuracy"] == full["test_accuracy"]


def test_more_epochs_on_a_constant_schedule_are_allowed_and_recorded(tiny, tmp_path):
  flags = ["--model", "mlp", "--checkpoint-every", "1", "--schedule", "constant"]
  assert _run_mnist(tiny, tmp_path / "cut", *flags, "--epochs", "2") == 0
  assert _run_mnist(tiny, tmp_path / "cut", *flags, "--epochs", "3", "--resume") == 0
  assert _run_mnist(tiny, tmp_path / "full", *flags, "--epochs", "3") == 0
  _, resumed = _published(tmp_path / "cut")
  _, full = _published(tmp_path / "full")
  assert resumed["resume"]["resumed_from"] == 2
  assert [(c["setting"], c["from"], c["to"]) for c in resumed["resume"]["changes"]] == [("epochs", 2, 3)]
  assert resumed["history"]["train_loss"] == full["history"]["train_loss"]
  assert resumed["test_accuracy"] == full["test_accuracy"]


RESUMABLE = ["--model", "mlp", "--epochs", "2", "--checkpoint-every", "1"]


@pytest.fixture(scope="module")
def checkpointed(tiny, tmp_path_factory):
  """A finished, checkpointed MLP run (copied by each test that resumes it)."""
  out = tmp_path_factory.mktemp("checkpointed") / "out"
  assert _run_mnist(tiny, out, *RESUMABLE) == 0
  return out


@pytest.mark.parametrize("change, name", [
    (["--lr", "0.05"], "lr"), (["--epochs", "3"], "epochs"), (["--batch-size", "8"], "batch_size"),
    (["--max-train", "50"], "max_train"), (["--augmentation", "none"], "augmentation"),
    (["--l2", "0.01"], "l2"), (["--seed", "1"], "seed"), (["--val-fraction", "0.2"], "val_fraction"),
    (["--dropout", "0.5"], "dropout"), (["--schedule", "constant"], "schedule"),
    (["--optimizer", "sgd"], "optimizer"),
])
def test_resume_with_a_changed_setting_is_refused(tiny, checkpointed, tmp_path, capsys, change, name):
  out = tmp_path / "out"
  shutil.copytree(checkpointed, out, symlinks=True)
  _, before = _published(out)
  code = _run_mnist(tiny, out, *RESUMABLE, "--resume", *change)  # the last value of a flag counts
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and name in err[0], err
  _, after = _published(out)
  assert after == before  # the refused run left the published result as it was
  assert list((out / "failures").iterdir())


def test_resume_with_only_quiet_changed_is_allowed(tiny, tmp_path):
  flags = ["--model", "softmax", "--epochs", "2", "--checkpoint-every", "1"]
  assert mnist.main(["--data-dir", str(tiny), "--out", str(tmp_path), "--batch-size", "16", *flags]) == 0
  assert _run_mnist(tiny, tmp_path, *flags, "--resume") == 0
  _, r = _published(tmp_path)
  assert r["config"]["quiet"] is True


def test_divergence_leaves_the_previous_result_and_records_the_failure(tiny, tmp_path, capsys):
  assert _run_mnist(tiny, tmp_path, "--model", "mlp", "--epochs", "1") == 0
  where, good = _published(tmp_path)
  code = _run_mnist(tiny, tmp_path, "--model", "mlp", "--epochs", "2", "--lr", "1e12")
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and "training diverged" in err[0]
  assert _published(tmp_path) == (where, good)
  (failure,) = (tmp_path / "failures").iterdir()
  record = json.loads(failure.read_text())
  assert "diverged" in record["failure"] and record["config"]["lr"] == 1e12 and record["step"] >= 1


def test_susy_quotes_the_significance_at_the_cut_chosen_on_validation(tmp_path, capsys):
  out = tmp_path / "susy"
  code = susy.main(["--simulate", "3000", "--features", "high", "--seeds", "2", "--epochs", "1",
                    "--tree-rounds", "5", "--out", str(out), "--quiet"])
  assert code == 0 and capsys.readouterr().out == ""
  where, r = _published(out)
  assert set(r["auc"]) == set(susy.MODELS) and r["data"]["n_test"] == 300 and r["data"]["n_valid"] == 300
  for name in susy.MODELS:
    sig = r["significance"][name]["high"]
    assert len(sig["values"]) == 2 and all(math.isfinite(v) for v in sig["values"])
    assert len(r["cut"][name]["high"]["values"]) == 2 and "significance_valid" in r
  assert "validation" in r["significance_definition"]
  programs = r["environment"]["compiler"]["programs"]
  assert set(programs) == {f"{name} high" for name in susy.MODELS if name != "trees"}
  assert all(len(r["models"][name]["high"]["history"]["learning_rate"]) == 1 for name in programs_of(r))
  assert all(p["train"]["loop"] in ("scan", "python") for p in programs.values())
  for f in ("roc_high.png", "features.png", "log.txt", "modern_high/metrics.csv"):
    assert (where / f).is_file(), f


def test_susy_resume_with_changed_settings_is_refused(tmp_path, capsys):
  flags = ["--simulate", "2000", "--features", "low", "--models", "logreg", "--seeds", "1",
           "--epochs", "1", "--checkpoint-every", "1", "--out", str(tmp_path), "--quiet"]
  assert susy.main(flags) == 0
  for change, name in ((["--epochs", "2"], "epochs"), (["--simulate", "2500"], "simulate"),
                       (["--batch-size", "64"], "batch_size")):
    changed = list(flags)
    if change[0] in changed:
      changed[changed.index(change[0]) + 1] = change[1]
    else:
      changed += change
    assert susy.main(changed + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert name in err, err


def test_susy_networks_keep_their_preset_epochs(tmp_path):
  assert susy.main(["--simulate", "2000", "--features", "low", "--models", "logreg", "--seeds", "1",
                    "--out", str(tmp_path), "--quiet"]) == 0
  _, r = _published(tmp_path)
  info = r["models"]["logreg"]["low"]
  assert info["network"]["epochs"] == 5 and len(info["history"]["train_loss"]) == 5
  assert 1 <= info["selected_epoch"] <= 5


@pytest.mark.parametrize("n_train, epochs", [(800_000, 3), (480_000, 5), (240_000, 10), (100, 10)])
def test_deep_networks_see_2_4_million_events_within_3_to_10_epochs(n_train, epochs):
  for name in ("deep", "modern"):
    assert build_network(name, susy.Config(), n_train=n_train)[0].epochs == epochs
    assert build_network(name, susy.Config(epochs=2), n_train=n_train)[0].epochs == 2  # the user's
  assert build_network("logreg", susy.Config(), n_train=100)[0].epochs == 5
