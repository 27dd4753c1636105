"""Callbacks: early stopping and restoring, CSV and TensorBoard logs, the progress display."""

import csv
import io
import struct

import jax
import numpy as np
import optax
import pytest

import jaxphys as jp
from jaxphys.callbacks import CSVLogger, EarlyStopping, Loop, ProgressBar, TensorBoard


def _setup(n=64, lr=1e-2, runs=None):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 4)).astype(np.float32)
  y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
  model = jp.MLP((8, 2))
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
  if runs:
    state = jp.create_train_states(jax.random.split(jax.random.key(0), runs), model, tx, x)
  else:
    state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
  return state, step, ev, x, y


def _drive(callback, values, states=None):
  """Runs ``callback`` over epochs whose ``eval_loss`` is ``values``, as fit would."""
  loop = Loop(state="initial", key=None, epochs=len(values))
  callback.on_train_begin(loop)
  done = 0
  for epoch, v in enumerate(values):
    loop.state = states[epoch] if states else epoch
    callback.on_epoch_end(loop, epoch, {"eval_loss": v})
    done += 1
    if loop.stop_training:
      break
  callback.on_train_end(loop)
  return done, loop.state


def test_early_stopping_waits_patience_epochs_beyond_min_delta():
  values = [3.0, 2.0, 1.97, 1.99, 1.5, 1.6, 1.49, 1.7, 1.8]
  stop = EarlyStopping("eval_loss", patience=2, min_delta=0.05)
  done, _ = _drive(stop, values)
  # Best (by more than 0.05): 3.0 (0), 2.0 (1), 1.5 (4); epochs 5, 6 (1.49 is within
  # min_delta), 7 do not improve: stopped after epoch 7.
  assert (done, stop.best_epoch, stop.best, stop.stopped_epoch) == (8, 4, 1.5, 7)
  done, _ = _drive(EarlyStopping("eval_loss", patience=0), [1.0, 1.0])
  assert done == 2
  stop = EarlyStopping("eval_loss", mode="max", patience=1)
  assert _drive(stop, [1.0, 0.5, 0.4, 2.0])[0] == 3 and stop.best_epoch == 0


def test_early_stopping_restores_the_best_state_and_checks_its_arguments():
  stop = EarlyStopping("eval_loss", patience=10, restore_best=True)
  _, final = _drive(stop, [3.0, 1.0, 2.0, 4.0], states=["s0", "s1", "s2", "s3"])
  assert final == "s1"
  _, final = _drive(EarlyStopping("eval_loss", patience=10), [3.0, 1.0, 2.0], states=["a", "b", "c"])
  assert final == "c"
  with pytest.raises(ValueError, match="mode must be"):
    EarlyStopping(mode="up")
  with pytest.raises(ValueError, match="monitor 'eval_auc' is not among"):
    _drive(EarlyStopping("eval_auc"), [1.0])


def test_early_stopping_under_fit_returns_the_best_epochs_state():
  state, step, ev, x, y = _setup(lr=0.5)  # a rate high enough that eval loss wanders
  stop = EarlyStopping("eval_loss", patience=3, restore_best=True)
  final, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=30, batch_size=8,
                       eval_step=ev, eval_data=(x, y), callbacks=[stop])
  best = int(np.argmin(hist["eval_loss"]))
  assert stop.best_epoch == best and len(hist["eval_loss"]) <= 30
  assert len(hist["eval_loss"]) == 30 or len(hist["eval_loss"]) == best + 5
  np.testing.assert_allclose(jp.evaluate(ev, final, x, y)["loss"], hist["eval_loss"][best], rtol=1e-5)


def test_csv_logger_writes_the_history_with_one_column_per_run(tmp_path):
  state, step, ev, x, y = _setup(runs=2)
  path = tmp_path / "logs" / "metrics.csv"
  _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=3, batch_size=16,
                   eval_step=ev, eval_data=(x, y), callbacks=[CSVLogger(path)])
  rows = list(csv.DictReader(open(path)))
  assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
  for name in ("train_loss", "eval_accuracy", "learning_rate"):
    for k in range(2):
      np.testing.assert_allclose([float(r[f"{name}[{k}]"]) for r in rows], hist[name][:, k], rtol=1e-6)
  np.testing.assert_allclose([float(r["epoch_seconds"]) for r in rows], hist["epoch_seconds"], rtol=1e-6)
  # A resumed run appends its epochs under the same header.
  _, h2 = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=5, initial_epoch=3, batch_size=16,
                 eval_step=ev, eval_data=(x, y), callbacks=[CSVLogger(path, append=True)])
  rows = list(csv.DictReader(open(path)))
  assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]


def _scalars(logdir):
  """(tag, step, value) of every scalar in the TFRecord event files under ``logdir``."""
  from tensorboardX.proto import event_pb2
  out = []
  for f in sorted(logdir.glob("events.out.tfevents.*")):
    data = f.read_bytes()
    i = 0
    while i < len(data):
      (length,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
      i += 12 + length + 4
      out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
  return out


def test_tensorboard_writes_every_metric_per_epoch(tmp_path):
  state, step, ev, x, y = _setup()
  _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2, batch_size=16,
                   eval_step=ev, eval_data=(x, y), callbacks=[TensorBoard(tmp_path)])
  scalars = _scalars(tmp_path)
  for name in ("train_loss", "eval_accuracy", "learning_rate"):
    got = [(s, v) for t, s, v in scalars if t == name]
    assert [s for s, _ in got] == [0, 1]
    np.testing.assert_allclose([v for _, v in got], hist[name], rtol=1e-6)


def test_progress_bar_writes_one_plain_line_per_epoch_off_a_terminal():
  state, step, ev, x, y = _setup()
  out = io.StringIO()
  jp.fit(state, step, x, y, key=jax.random.key(1), epochs=3, batch_size=16, callbacks=[ProgressBar(out)])
  lines = out.getvalue().splitlines()
  assert len(lines) == 3 and "\r" not in out.getvalue()
  assert lines[0].startswith("epoch 1/3  train_loss ") and "learning_rate 0.01" in lines[0]


def test_fit_without_callbacks_prints_nothing(capsys):
  state, step, ev, x, y = _setup()
  jp.fit(state, step, x, y, key=jax.random.key(1), epochs=1, batch_size=16)
  assert capsys.readouterr() == ("", "")


def test_checkpointer_is_reexported():
  from jaxphys.checkpoint import Checkpointer
  assert jp.callbacks.Checkpointer is Checkpointer


def test_progress_bar_draws_a_bar_on_a_terminal():
  class Terminal(io.StringIO):
    def isatty(self):
      return True

  state, step, ev, x, y = _setup()
  out = Terminal()
  jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2, batch_size=16, callbacks=[ProgressBar(out)])
  text = out.getvalue()
  assert "\r" in text and "2/2" in text  # tqdm's bar, redrawn in place
  assert "epoch 1/2  train_loss" in text and "epoch 2/2  train_loss" in text
