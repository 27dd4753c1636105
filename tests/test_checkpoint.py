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
