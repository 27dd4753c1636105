"""The bad-input corpus: every malformed input a user can give is a documented exception
with a one-line message (library) or one line on stderr, exit code 2 and no output files
(command lines). File-format cases live in test_data.py and test_susy_data.py; here are
the rest and the fuzzing of the SUSY CSV parser."""

import gzip
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import jaxphys as jp
from jaxphys.data import load_susy, write_idx
from jaxphys.errors import DataError

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _one_line(err):
  assert "\n" not in str(err.value).strip(), str(err.value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=200),
                 st.lists(st.sampled_from(["0", "1", "2", "0.5", "-3e2", "nan", "inf", "x", "", ",",
                                           "\n", "\r\n", " ", '"', "1e999"]), max_size=60).map("".join)
                 .map(str.encode)))
def test_random_susy_files_only_raise_data_error(tmp_path_factory, payload):
  for name, data in (("f.csv", payload), ("f.csv.gz", gzip.compress(payload)), ("g.csv.gz", payload)):
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(data)
    try:
      x, y = load_susy(path)
    except DataError as e:
      assert "\n" not in str(e).strip() and name in str(e)
    else:  # whatever parses is well formed
      assert x.shape == (len(y), 18) and np.isin(y, (0, 1)).all() and np.isfinite(x).all()


def test_model_input_shape_mismatch_is_one_line(tmp_path):
  x18 = np.ones((32, 18), np.float32)
  model, tx = jp.MLP((8, 2)), optax.adam(1e-3)
  state = jp.create_train_state(jax.random.key(0), model, tx, x18)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  with pytest.raises(ValueError, match=r"x has per-example shape \(10,\), but the state's parameters were initialised") as err:
    jp.fit(state, step, np.ones((32, 10), np.float32), np.zeros(32, np.int32), key=jax.random.key(0),
           epochs=1, batch_size=8)
  _one_line(err)
  cnn = jp.CNN()
  with pytest.raises(ValueError, match=r"CNN expects \(batch, height, width, channels\)") as err:
    jp.create_train_state(jax.random.key(0), cnn, tx, x18)
  _one_line(err)


@pytest.mark.parametrize("call,exc,message", [
    (lambda: jp.activations.get("nope"), ValueError, "unknown activation 'nope'"),
    (lambda: jp.data.load_mnist("nope"), DataError, "unknown dataset 'nope'"),
    (lambda: jp.fit(None, None, np.ones((4, 2)), np.ones(4), key=jax.random.key(0), epochs=1, batch_size=0),
     ValueError, "batch_size must be a positive integer"),
    (lambda: jp.fit(None, None, np.ones((4, 2)), np.ones(4), key=jax.random.key(0), epochs=-1, batch_size=2),
     ValueError, "epochs and initial_epoch must be non-negative integers"),
    (lambda: jp.fit(None, None, np.ones((4, 2)), np.ones(3), key=jax.random.key(0), epochs=1, batch_size=2),
     ValueError, "x has 4 examples but y has 3"),
    (lambda: jp.checkpoint.Checkpointer("/tmp/x", every=0), ValueError, "every and keep must be positive"),
])
def test_bad_library_arguments_are_one_line(call, exc, message):
  with pytest.raises(exc, match=message) as err:
    call()
  _one_line(err)


@pytest.fixture(scope="module")
def tiny_idx(tmp_path_factory):
  d = tmp_path_factory.mktemp("idx")
  rng = np.random.default_rng(0)
  for split, n in (("train", 20), ("t10k", 10)):
    write_idx(d / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
    write_idx(d / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
  return d


@pytest.mark.parametrize("script,args,message", [
    ("mnist.py", ["--model", "mlp", "--epochs", "0"], "epochs must be in [1, 2147483647], got 0"),
    ("mnist.py", ["--model", "mlp", "--batch-size", "-4"], "batch_size must be in [1, 2147483647], got -4"),
    ("mnist.py", ["--model", "mlp", "--lr", "0"], "lr must be in (0, inf], got 0.0"),
    ("mnist.py", ["--model", "mlp", "--resume"], None),  # nothing to resume: a fresh run is fine
    ("susy.py", ["--simulate", "0"], "simulate must be in [10, inf], got 0"),
    ("susy.py", ["--simulate", "100", "--batch-size", "0"], "batch_size must be in [1, 2147483647], got 0"),
    ("susy.py", ["--simulate", "100", "--epochs", "-1"], "epochs must be in [1, 2147483647], got -1"),
    ("susy.py", ["--data", "{idx}"], "not a regular file"),
    ("mnist.py", ["--model", "transformer"], "invalid choice: 'transformer'"),
    ("mnist.py", ["--dataset", "cifar10"], "invalid choice: 'cifar10'"),
    ("susy.py", ["--models", "svm"], "invalid choice: 'svm'"),
    ("susy.py", ["--seeds", "three"], "invalid int value: 'three'"),
])
def test_command_lines_reject_bad_numbers_without_writing(tmp_path, tiny_idx, script, args, message):
  out = tmp_path / "out"
  extra = ["--data-dir", str(tiny_idx), "--no-download"] if script == "mnist.py" else []
  cmd = [sys.executable, str(EXPERIMENTS / script), *[a.format(idx=tiny_idx) for a in args], *extra,
         "--out", str(out), "--quiet"]
  if message is None:
    cmd[cmd.index("--resume") + 1:cmd.index("--resume") + 1] = ["--epochs", "1"]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=300).returncode == 0
    return
  done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  lines = done.stderr.strip().splitlines()
  assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr
  assert not out.exists()


def test_mnist_settings_are_checked_before_the_data_is_looked_for(tmp_path):
  empty = tmp_path / "no_data"
  empty.mkdir()
  done = subprocess.run([sys.executable, str(EXPERIMENTS / "mnist.py"), "--l2", "-1", "--data-dir", str(empty),
                         "--no-download", "--out", str(tmp_path / "out"), "--quiet"],
                        capture_output=True, text=True, timeout=300)
  lines = done.stderr.strip().splitlines()
  assert done.returncode == 2 and lines == ["error: l2 must be in [0, inf], got -1.0"], done.stderr
  assert not (tmp_path / "out").exists()
