import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxphys as jp
from jaxphys.checkpoint import load_params, save_params
from jaxphys.errors import DataError


def _params(features=(8, 3)):
  return jp.MLP(features).init(jax.random.key(0), jnp.ones((1, 5)))["params"]


def test_round_trip(tmp_path):
  p = _params()
  save_params(tmp_path / "p.msgpack", p)
  q = load_params(tmp_path / "p.msgpack", jax.tree_util.tree_map(jnp.zeros_like, p))
  for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(q)):
    np.testing.assert_array_equal(a, b)
  assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_truncated_tampered_and_mismatched_checkpoints_are_one_line_errors(tmp_path):
  path = save_params(tmp_path / "p.msgpack", _params())
  raw = path.read_bytes()
  (tmp_path / "t.msgpack").write_bytes(raw[: len(raw) // 2])
  with pytest.raises(DataError, match="not a valid checkpoint"):
    load_params(tmp_path / "t.msgpack", _params())
  with pytest.raises(DataError, match=r"parameter \['Dense_0'\]\['bias'\] has shape \(8,\), the model expects \(16,\)"):
    load_params(path, _params((16, 3)))
  with pytest.raises(DataError, match="does not match the model"):
    load_params(path, _params((8, 8, 3)))
  with pytest.raises(DataError, match="no such checkpoint"):
    load_params(tmp_path / "missing", _params())


# ---------------------------------------------------------------- training checkpoints

import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time

import optax

from jaxphys.checkpoint import Checkpointer
from jaxphys.errors import ConfigMismatch, OutputError, TrainingDiverged

def fit_checkpointing(fit, ckpt, resume):
  """fit's arguments for checkpointing: ``callbacks=[ckpt]`` (the callback protocol), or
  the older ``checkpointer=ckpt, resume=resume``."""
  import inspect

  if "callbacks" in inspect.signature(fit).parameters:
    return {"callbacks": [ckpt] if ckpt is not None else []}
  return {"progress": False, "checkpointer": ckpt, "resume": resume}


_TRAIN = inspect.getsource(fit_checkpointing) + textwrap.dedent("""
    import sys, numpy as np, jax, optax, jaxphys as jp
    from jaxphys.checkpoint import Checkpointer
    directory, out, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "resume"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 10)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    model, tx = jp.MLP((64, 64, 2)), optax.adam(1e-3)
    step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
    state = jp.create_train_state(jax.random.key(0), model, tx, x)
    ckpt = Checkpointer(directory, every=1, keep=2, resume=resume) if directory != "-" else None
    start = ckpt.latest_epoch() if (ckpt and resume) else None
    state, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=40, batch_size=32,
                         **fit_checkpointing(jp.fit, ckpt, resume))
    np.savez(out, loss=hist["train_loss"], **{str(i): np.asarray(a) for i, a in
                                             enumerate(jax.tree_util.tree_leaves(state))})
    print("resumed from", start)
""")


def _train(tmp_path, directory, out, mode="fresh"):
  return subprocess.Popen([sys.executable, "-c", _TRAIN, str(directory), str(out), mode],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _epochs_on_disk(directory):
  return Checkpointer(directory).all_epochs()


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_exact(tmp_path):
  reference = _train(tmp_path, "-", tmp_path / "ref.npz")
  assert reference.wait(timeout=600) == 0, reference.stderr.read()[-2000:]
  ckpt = tmp_path / "ckpt"
  run = _train(tmp_path, ckpt, tmp_path / "killed.npz")
  deadline = time.time() + 300
  while len(_epochs_on_disk(ckpt)) < 1 and run.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  time.sleep(np.random.default_rng(int(time.time())).uniform(0.0, 1.0))  # an arbitrary moment
  os.kill(run.pid, signal.SIGKILL)
  run.wait()
  assert not (tmp_path / "killed.npz").exists(), "the run finished before it could be killed"
  resumed = _train(tmp_path, ckpt, tmp_path / "resumed.npz", "resume")
  assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-2000:]
  start = resumed.stdout.read().split()[-1]
  assert start != "None" and 1 <= int(start) < 40, start
  ref, res = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
  assert sorted(ref.files) == sorted(res.files)
  for name in ref.files:  # parameters, optimiser state, step and the loss history
    np.testing.assert_array_equal(res[name], ref[name], err_msg=name)


def _small_run(tmp_path, epochs, checkpointer=None, lr=1e-2, scale=1.0, resume=False, features=(16, 2)):
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(512, 6)) * scale).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)
  model, tx = jp.MLP(features), optax.sgd(lr)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  evals = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
  if checkpointer is not None:
    checkpointer.resume = resume
  return jp.fit(state, step, x, y, key=jax.random.key(1), epochs=epochs, batch_size=64,
                eval_step=evals, eval_data=(x[:256], y[:256]),
                **fit_checkpointing(jp.fit, checkpointer, resume))


def test_checkpointer_keeps_the_last_k_and_the_best(tmp_path):
  ckpt = Checkpointer(tmp_path / "c", every=1, keep=2, best_metric="eval_accuracy", best_mode="max")
  _, hist = _small_run(tmp_path, 6, ckpt, lr=0.5)
  best = int(np.argmax(hist["eval_accuracy"])) + 1
  assert ckpt.all_epochs() == sorted({best, 5, 6})
  every3 = Checkpointer(tmp_path / "e", every=4, keep=5)
  _small_run(tmp_path, 6, every3)
  assert every3.all_epochs() == [4, 6]  # every 4 epochs and after the last
  assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["epoch_4.ckpt", "epoch_6.ckpt"]


class _Loop:
  """What fit hands its callbacks (jaxphys.callbacks' protocol), for testing the hooks alone."""

  def __init__(self, state, key, epochs):
    self.state, self.key, self.epochs, self.initial_epoch = state, key, epochs, 0
    self.history, self.stop_training = {}, False


def _state(features=(16, 2)):
  model, tx = jp.MLP(features), optax.adam(1e-2)
  return jp.create_train_state(jax.random.key(0), model, tx, np.zeros((1, 6), np.float32))


def _drive(ckpt, state, epochs, losses, start_history=None):
  """Runs the hooks like fit: epochs from loop.initial_epoch, one fake update each."""
  loop = _Loop(state, jax.random.key(1), epochs)
  ckpt.on_train_begin(loop)
  for epoch in range(loop.initial_epoch, epochs):
    loop.state = loop.state.replace(step=loop.state.step + 1,
                                    params=jax.tree_util.tree_map(lambda p: p + 1.0, loop.state.params))
    logs = {"train_loss": np.float32(losses[epoch]), "eval_loss": np.float32(losses[epoch])}
    for k, v in logs.items():
      loop.history.setdefault(k, []).append(v)
    ckpt.on_epoch_end(loop, epoch, logs)
  return loop


def test_retention_holds_across_resumes(tmp_path):
  losses = [0.9, 0.2, 0.5, 0.6, 0.7, 0.1, 0.8, 0.9]
  first = _drive(Checkpointer(tmp_path, keep=1, best_metric="eval_loss"), _state(), 4, losses)
  assert Checkpointer(tmp_path).all_epochs() == [2, 4]  # the best (0.2) and the last
  ckpt = Checkpointer(tmp_path, keep=1, best_metric="eval_loss", resume=True)
  loop = _drive(ckpt, _state(), 8, losses)
  assert ckpt.resumed_from == 4 and ckpt.all_epochs() == [6, 8]  # keep=1: one plus the best
  assert [float(v) for v in loop.history["eval_loss"]] == [np.float32(v) for v in losses]
  assert loop.history["train_loss"][0].dtype == np.float32
  assert int(loop.state.step) == 8 and int(first.state.step) == 4
  # A fresh run (no resume) into the folder replaces its checkpoints from its first save.
  fresh = Checkpointer(tmp_path, keep=3)
  _drive(fresh, _state(), 2, losses)
  assert fresh.all_epochs() == [1, 2]


def test_an_early_stop_between_checkpoints_is_saved_at_the_end(tmp_path):
  ckpt = Checkpointer(tmp_path, every=5)
  loop = _drive(ckpt, _state(), 3, [0.5] * 3)  # 3 epochs of a planned 3: saved at the last
  assert ckpt.all_epochs() == [3]
  ckpt = Checkpointer(tmp_path / "b", every=5)
  loop = _Loop(_state(), jax.random.key(1), 20)
  ckpt.on_train_begin(loop)
  for epoch in range(2):  # stopped after 2 (EarlyStopping after this callback in the list)
    loop.history.setdefault("train_loss", []).append(0.5)
    ckpt.on_epoch_end(loop, epoch, {"train_loss": 0.5})
  ckpt.on_train_end(loop)
  assert ckpt.all_epochs() == [2]
  other = Checkpointer(tmp_path / "c", every=5)
  loop = _Loop(_state(), jax.random.key(1), 20)
  other.on_train_begin(loop)
  loop.history["train_loss"] = [0.5]
  other.on_epoch_end(loop, 0, {"train_loss": 0.5})
  loop.state = _state()  # replaced (e.g. the best state restored): not saved as epoch 1
  other.on_train_end(loop)
  assert other.all_epochs() == []


def test_resume_restores_state_key_and_history_exactly(tmp_path):
  losses = np.linspace(1, 0, 6)
  full = _drive(Checkpointer(tmp_path / "a", keep=2), _state(), 6, losses)
  _drive(Checkpointer(tmp_path / "b", keep=2), _state(), 3, losses)
  resumed = _drive(Checkpointer(tmp_path / "b", resume=True), _state(), 6, losses)
  for a, b in zip(jax.tree_util.tree_leaves(full.state), jax.tree_util.tree_leaves(resumed.state)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(np.asarray(full.history["train_loss"]), np.asarray(resumed.history["train_loss"]))
  with pytest.raises(ConfigMismatch, match=r"epoch_6.ckpt: the checkpoint has 6 epochs done, more than the 2 asked for"):
    _drive(Checkpointer(tmp_path / "b", resume=True), _state(), 2, losses)
  nothing = _Loop(_state(), jax.random.key(1), 3)
  Checkpointer(tmp_path / "empty", resume=True).on_train_begin(nothing)  # no checkpoint: a fresh start
  assert nothing.initial_epoch == 0 and nothing.history == {}


def test_resume_with_other_settings_names_every_difference(tmp_path):
  config = {"lr": 0.001, "epochs": 3, "batch_size": 128, "data": "mnist-5k:sha256=ab12", "quiet": False}
  _drive(Checkpointer(tmp_path, config=config), _state(), 3, [0.5] * 9)
  changed = dict(config, lr=0.05, batch_size=64, epochs=9, quiet=True)
  with pytest.raises(ConfigMismatch) as err:
    Checkpointer(tmp_path, resume=True, config=changed, allowed_changes=("epochs", "quiet")).on_train_begin(
        _Loop(_state(), jax.random.key(1), 9))
  message = str(err.value)
  assert "\n" not in message and "epoch_3.ckpt" in message
  assert "batch_size: 128 -> 64; lr: 0.001 -> 0.05" in message and "epochs" not in message.split("(")[1]
  assert err.value.differences == {"batch_size": (128, 64), "lr": (0.001, 0.05)}
  assert isinstance(err.value, DataError)
  with pytest.raises(ConfigMismatch, match=r"data: \"mnist-5k:sha256=ab12\" -> \"mnist-5k:sha256=cd34\""):
    Checkpointer(tmp_path, resume=True, config=dict(config, data="mnist-5k:sha256=cd34")).restore(
        _state(), jax.random.key(1))
  allowed = Checkpointer(tmp_path, resume=True, config=dict(config, epochs=9, quiet=True),
                         allowed_changes=("epochs", "quiet"))
  loop = _drive(allowed, _state(), 9, [0.5] * 9)
  assert loop.initial_epoch == 3 and int(loop.state.step) == 9
  expected = [{"at_epoch": 3, "setting": "epochs", "from": 3, "to": 9},
              {"at_epoch": 3, "setting": "quiet", "from": False, "to": True}]
  assert allowed.changes == expected
  again = Checkpointer(tmp_path, resume=True, config=dict(config, epochs=9, quiet=True))
  again.restore(_state(), jax.random.key(1))
  assert again.changes == expected  # recorded in the later checkpoints too


def _tamper(path, old: bytes, new: bytes):
  raw = path.read_bytes()
  assert raw.count(old) >= 1, old
  path.write_bytes(raw.replace(old, new, 1))


@pytest.mark.parametrize("what", ["state", "history", "config", "epochs", "truncated", "foreign"])
def test_tampered_or_damaged_checkpoints_are_one_line_errors(tmp_path, what):
  config = {"lr": 0.125}
  ckpt = Checkpointer(tmp_path, config=config)
  loop = _drive(ckpt, _state(), 2, [0.25, 0.5])
  path = ckpt.path(2)
  if what == "state":  # one byte of a parameter array
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 1
    path.write_bytes(bytes(raw))
  elif what == "history":
    _tamper(path, b"0.5", b"0.6")
  elif what == "config":
    _tamper(path, b"0.125", b"0.126")
  elif what == "epochs":
    _tamper(path, b'"epochs_done": 2', b'"epochs_done": 3')
  elif what == "truncated":
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  else:
    path.write_bytes(b"PK\x03\x04 something else entirely")
  message = "not a jaxphys checkpoint" if what == "foreign" else "do not match their SHA-256 digest"
  with pytest.raises(DataError, match=message) as err:
    Checkpointer(tmp_path, config=config).restore(loop.state, loop.key)
  assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_checkpoints_of_another_model_or_seed_are_refused(tmp_path):
  ckpt = Checkpointer(tmp_path)
  _drive(ckpt, _state(), 1, [0.5])
  with pytest.raises(DataError, match=r"epoch_1.ckpt: parameter .* has shape \(16,\), the model expects \(32,\)"):
    ckpt.restore(_state((32, 2)), jax.random.key(1))
  with pytest.raises(DataError, match="different key"):
    ckpt.restore(_state(), jax.random.key(2))
  sgd = jp.create_train_state(jax.random.key(0), jp.MLP((16, 2)), optax.sgd(0.1), np.zeros((1, 6), np.float32))
  with pytest.raises(DataError, match="does not match the model or optimiser"):
    ckpt.restore(sgd, jax.random.key(1))


def test_checkpoint_files_modes_temporaries_and_full_disk(tmp_path, monkeypatch):
  old = os.umask(0o022)
  try:
    ckpt = Checkpointer(tmp_path)
    _drive(ckpt, _state(), 1, [0.5])
  finally:
    os.umask(old)
  assert oct(ckpt.path(1).stat().st_mode & 0o777) == oct(0o644)
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                        text=True).stdout.strip()
  leftover = tmp_path / f".epoch_2.ckpt.jaxphys-{dead}-x1.tmp"  # a write killed midway
  leftover.write_bytes(b"partial")
  Checkpointer(tmp_path)
  assert not leftover.exists()

  def full(fd):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "fsync", full)
  with pytest.raises(OutputError) as err:
    _drive(Checkpointer(tmp_path, resume=True), _state(), 2, [0.5, 0.5])
  assert str(err.value) == f"{ckpt.path(2)}: cannot write (No space left on device)"
  monkeypatch.undo()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.ckpt"]


def test_bad_arguments(tmp_path):
  for kwargs, message in [({"every": 0}, "every and keep must be positive integers, got every=0, keep=2"),
                          ({"keep": 1.5}, "every and keep must be positive integers, got every=1, keep=1.5"),
                          ({"best_mode": "up"}, "best_mode must be 'min' or 'max'"),
                          ({"config": [1]}, "config must be a dict"),
                          ({"config": {"f": object()}}, "config: not JSON-able"),
                          ({"allowed_changes": "epochs"}, "allowed_changes must be a sequence")]:
    with pytest.raises(ValueError, match=message):
      Checkpointer(tmp_path, **kwargs)
  with pytest.raises(ValueError, match="best_metric 'eval_auc' is not a logged metric"):
    _drive(Checkpointer(tmp_path, best_metric="eval_auc"), _state(), 1, [0.5])


def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
  ckpt = Checkpointer(tmp_path / "c", every=1, keep=3)
  with pytest.raises(TrainingDiverged) as err:
    _small_run(tmp_path, 20, ckpt, lr=1e4, scale=1e3)
  e = err.value
  assert e.epoch >= 0 and e.step >= 1 and "learning rate" in str(e) and "\n" not in str(e)
  assert f"epoch {e.epoch}, step {e.step}" in str(e)
  assert len(e.history.get("train_loss", [])) == e.epoch  # the epochs completed before it
  assert ckpt.latest_epoch() == (e.epoch or None)  # nothing written for the diverged epoch
  if e.epoch:
    _, restored, _ = ckpt.restore(_small_run(tmp_path, 0)[0], jax.random.key(1))
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(restored))


@pytest.mark.parametrize("damage", ["metric", "length"])
def test_retention_trusts_only_checkpoints_that_verify(tmp_path, damage):
  losses = [0.9, 0.2, 0.5, 0.6]
  ckpt = Checkpointer(tmp_path, keep=1, best_metric="eval_loss")
  loop = _drive(ckpt, _state(), 3, losses)
  assert ckpt.all_epochs() == [2, 3]
  raw = bytearray(ckpt.path(3).read_bytes())
  if damage == "metric":  # an edited record claiming to be the best
    assert raw.count(b'"metric": 0.5') == 1
    raw = raw.replace(b'"metric": 0.5', b'"metric": 0.1', 1)
  else:  # a damaged record length
    at = len(b"jaxphys checkpoint 1\n") + 32
    raw[at:at + 8] = (2 ** 62).to_bytes(8, "little")
  ckpt.path(3).write_bytes(bytes(raw))
  ckpt.save(4, loop.state, loop.key, {"eval_loss": losses})
  assert ckpt.all_epochs() == [2, 4]  # the true best stays


def test_a_fresh_run_removes_old_checkpoints_only_once_its_first_is_written(tmp_path, monkeypatch):
  _drive(Checkpointer(tmp_path), _state(), 2, [0.5, 0.4])

  def full(fd):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "fsync", full)
  with pytest.raises(OutputError):
    _drive(Checkpointer(tmp_path), _state(), 1, [0.3])
  monkeypatch.undo()
  assert Checkpointer(tmp_path).all_epochs() == [1, 2]
  assert Checkpointer(tmp_path).restore(_state(), jax.random.key(1))[0] == 2  # the old run's, intact
  _drive(Checkpointer(tmp_path), _state(), 1, [0.3])
  assert Checkpointer(tmp_path).all_epochs() == [1]


def test_a_best_metric_without_values_is_not_an_index_error(tmp_path):
  ckpt = Checkpointer(tmp_path, best_metric="eval_loss")
  ckpt.save(1, _state(), jax.random.key(1), {"eval_loss": [], "train_loss": [0.5]})
  assert ckpt.all_epochs() == [1]


def test_a_nan_setting_equals_itself_on_resume(tmp_path):
  from jaxphys.checkpoint import config_differences

  assert config_differences({"clip": float("nan"), "w": [1.0, float("nan")]},
                            {"clip": float("nan"), "w": [1.0, float("nan")]}) == {}
  assert config_differences({"lr": 1}, {"lr": 1.0}) == {}
  assert list(config_differences({"w": [float("nan")]}, {"w": [0.0]})) == ["w"]
