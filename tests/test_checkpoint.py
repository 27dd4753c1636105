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

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import optax

from jaxphys.checkpoint import Checkpointer
from jaxphys.errors import TrainingDiverged

_TRAIN = textwrap.dedent("""
    import sys, numpy as np, jax, optax, jaxphys as jp
    from jaxphys.checkpoint import Checkpointer
    directory, out, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "resume"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 10)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    model, tx = jp.MLP((64, 64, 2)), optax.adam(1e-3)
    step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
    state = jp.create_train_state(jax.random.key(0), model, tx, x)
    ckpt = Checkpointer(directory, every=1, keep=2) if directory != "-" else None
    start = ckpt.latest_epoch() if (ckpt and resume) else None
    state, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=40, batch_size=32,
                         progress=False, checkpointer=ckpt, resume=resume)
    np.savez(out, loss=hist["train_loss"], **{str(i): np.asarray(a) for i, a in
                                             enumerate(jax.tree_util.tree_leaves(state))})
    print("resumed from", start)
""")


def _train(tmp_path, directory, out, mode="fresh"):
  return subprocess.Popen([sys.executable, "-c", _TRAIN, str(directory), str(out), mode],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _epochs_on_disk(directory):
  return sorted(int(p.name) for p in directory.glob("[0-9]*") if p.is_dir() and p.name.isdigit()) if directory.exists() else []


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
  return jp.fit(state, step, x, y, key=jax.random.key(1), epochs=epochs, batch_size=64, progress=False,
                eval_step=evals, eval_data=(x[:256], y[:256]), checkpointer=checkpointer, resume=resume)


def test_checkpointer_keeps_the_last_k_and_the_best(tmp_path):
  ckpt = Checkpointer(tmp_path / "c", every=1, keep=2, best_metric="eval_accuracy", best_mode="max")
  _, hist = _small_run(tmp_path, 6, ckpt, lr=0.5)
  best = int(np.argmax(hist["eval_accuracy"])) + 1
  assert ckpt.all_epochs() == sorted({best, 5, 6})
  every3 = Checkpointer(tmp_path / "e", every=4, keep=5)
  _small_run(tmp_path, 6, every3)
  assert every3.all_epochs() == [4, 6]  # every 4 epochs and after the last


def test_damaged_foreign_and_mismatched_checkpoints_are_one_line_errors(tmp_path):
  ckpt = Checkpointer(tmp_path / "c", every=1, keep=1)
  state, _ = _small_run(tmp_path, 2, ckpt)
  template = _small_run(tmp_path, 0)[0]
  assert ckpt.restore(template, jax.random.key(1))[0] == 2
  with pytest.raises(DataError, match=r"c/2: parameter .* has shape .*, the model expects"):
    ckpt.restore(_small_run(tmp_path, 0, features=(32, 2))[0], jax.random.key(1))
  with pytest.raises(DataError, match="different key"):
    ckpt.restore(template, jax.random.key(2))
  # Damage: truncated array files, a truncated record, and arrays that no longer match the
  # record's SHA-256 digest (as after an edit that keeps every file readable).
  record = tmp_path / "c" / "2" / "record" / "metadata"
  original = record.read_text()
  edited = json.loads(original)
  edited["sha256"] = "0" * 64
  damages = [(record, json.dumps(edited), "do not match their SHA-256 digest"),
             (record, original[: len(original) // 2], "cannot be read")]
  for path, text, message in damages:
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
      ckpt.restore(template, jax.random.key(1))
    assert "c/2: checkpoint" in str(err.value) and "\n" not in str(err.value)
  record.write_text(original)
  assert ckpt.restore(template, jax.random.key(1))[0] == 2
  for f in (tmp_path / "c" / "2" / "state").rglob("*"):
    if f.is_file() and f.stat().st_size:
      f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
  with pytest.raises(DataError, match="c/2: checkpoint cannot be read"):
    ckpt.restore(template, jax.random.key(1))


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
