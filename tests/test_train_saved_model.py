"""Saved models load for inference without the training script; parameter files carry
the model state."""

import json
import os
import subprocess
import sys

import chex
import flax.linen as nn
import jax
import numpy as np
import optax
import pytest

import jaxphys as jp
from jaxphys.checkpoint import load_model, load_params, save_model, save_params
from jaxphys.errors import DataError


def _trained_resnet():
  x = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
  model, tx = jp.ResNet(stage_features=(4, 8), num_classes=3), optax.adam(1e-2)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  state, _ = step(state, {"x": x, "y": np.arange(16) % 3}, jax.random.key(1))
  return model, state, x


def test_saved_model_predicts_like_the_trained_state_in_a_fresh_process(tmp_path):
  model, state, x = _trained_resnet()
  expected = np.asarray(jp.predict(model.apply, state, x))
  path = save_model(tmp_path / "model", model, state)
  record = json.loads((path / "model.json").read_text())
  assert record["class"] == "jaxphys.models:ResNet" and record["settings"]["stage_features"] == [4, 8]
  np.testing.assert_allclose(load_model(path)(x, batch_size=5), expected, rtol=1e-5, atol=1e-6)
  np.save(tmp_path / "x.npy", x)
  script = ("import sys, numpy as np; from jaxphys.checkpoint import load_model; "
            "p = load_model(sys.argv[1]); np.save(sys.argv[2], np.asarray(p(np.load(sys.argv[3]))))")
  subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "out.npy"), str(tmp_path / "x.npy")],
                 check=True, env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)
  np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-5, atol=1e-6)


class _Local(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(2)(x)


def test_save_model_refuses_what_could_not_be_loaded(tmp_path):
  x = np.ones((1, 3), np.float32)
  tx = optax.sgd(0.1)
  state = jp.create_train_state(jax.random.key(0), _Local(), tx, x)
  module, _Local.__module__ = _Local.__module__, "__main__"  # as if defined in the script
  try:
    with pytest.raises(ValueError, match="_Local is defined in a script"):
      save_model(tmp_path / "a", _Local(), state)
  finally:
    _Local.__module__ = module
  mlp = jp.MLP((4, 2), activation=jax.nn.relu)
  with pytest.raises(ValueError, match=r"setting activation=.* is not JSON-able"):
    save_model(tmp_path / "b", mlp, jp.create_train_state(jax.random.key(0), mlp, tx, x))
  states = jp.create_train_states(jax.random.split(jax.random.key(0), 2), jp.MLP((4, 2)), tx, x)
  with pytest.raises(ValueError, match="state holds 2 stacked runs"):
    save_model(tmp_path / "c", jp.MLP((4, 2)), states)
  with pytest.raises(DataError, match="no saved model"):
    load_model(tmp_path / "missing")
  path = save_model(tmp_path / "d", jp.MLP((4, 2)), jp.create_train_state(jax.random.key(0), jp.MLP((4, 2)), tx, x))
  (path / "model.json").write_text(json.dumps({"format": "jaxphys-model/1", "class": "os:path", "settings": {}}))
  with pytest.raises(DataError, match="is not a flax.linen.Module"):
    load_model(path)


def test_param_files_carry_the_model_state(tmp_path):
  model, state, x = _trained_resnet()
  path = save_params(tmp_path / "p.msgpack", state)
  fresh = jp.create_train_state(jax.random.key(5), model, optax.adam(1e-2), x)
  loaded = load_params(path, fresh)
  chex.assert_trees_all_equal(loaded.params, state.params)
  chex.assert_trees_all_equal(loaded.model_state, state.model_state)
  assert int(loaded.step) == 0  # the step and optimiser state are the target's
  with pytest.raises(DataError, match="does not match the model"):
    load_params(path, fresh.params)
