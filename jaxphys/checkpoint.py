"""Parameter checkpoints through Flax serialisation (msgpack: no pickle, no code run).

Files are written atomically; loading checks the stored tree against the expected
structure and shapes and fails with a one-line :class:`~jaxphys.errors.DataError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from jaxphys._io import atomic_write_bytes
from jaxphys.errors import DataError

__all__ = ["save_params", "load_params"]


def save_params(path, params: Any) -> Path:
  """Writes the pytree ``params`` to ``path`` (msgpack), atomically."""
  path = Path(path)
  atomic_write_bytes(path, serialization.msgpack_serialize(
      serialization.to_state_dict(jax.device_get(params))))
  return path


def load_params(path, target: Any) -> Any:
  """Reads ``path`` into the structure of ``target`` (a pytree of arrays with the expected
  shapes, e.g. freshly initialised parameters)."""
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: no such checkpoint file")
  try:
    state = serialization.msgpack_restore(path.read_bytes())
  except Exception as e:  # msgpack raises several types on corrupt input
    raise DataError(f"{path}: not a valid checkpoint ({type(e).__name__})") from None
  try:
    restored = serialization.from_state_dict(target, state)
  except (ValueError, KeyError, TypeError) as e:
    raise DataError(f"{path}: checkpoint does not match the model ({str(e).splitlines()[0]})") from None
  for (kp, a), b in zip(jax.tree_util.tree_leaves_with_path(restored), jax.tree_util.tree_leaves(target)):
    if np.shape(a) != np.shape(b):
      raise DataError(f"{path}: parameter {jax.tree_util.keystr(kp)} has shape {np.shape(a)}, "
                      f"the model expects {np.shape(b)}")
  return restored
