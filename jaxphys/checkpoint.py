"""Checkpoints: resumable training checkpoints, parameter files and saved models.

:class:`Checkpointer` keeps training resumable: the full state (parameters, model state,
optimiser state, step), the run's PRNG key, the number of epochs done (the data order
is a function of key and epoch) and the metric history, every N epochs, the last K and
the best by a metric. :func:`save_params` / :func:`load_params` write one parameter
pytree, or a :class:`~jaxphys.TrainState`'s parameters and model state, as msgpack.
:func:`save_model` / :func:`load_model` store a model for inference: its class and
settings beside its variables, loaded back into a ready-to-call :class:`Predictor`
without the training script. None of them uses pickle; all are atomic, and loading
checks what was stored, failing with a one-line :class:`~jaxphys.errors.DataError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np
from flax import serialization

from jaxphys._io import atomic_write_bytes, write_json
from jaxphys.errors import DataError

__all__ = ["Checkpointer", "save_params", "load_params", "save_model", "load_model", "Predictor"]

_MODEL_FORMAT = "jaxphys-model/1"


def _as_variables(tree: Any) -> Any:
  """A :class:`~jaxphys.TrainState` as its ``{"params", **model_state}``; else ``tree``."""
  from jaxphys.train import TrainState
  if isinstance(tree, TrainState):
    if np.ndim(tree.step) != 0:
      raise ValueError(f"state holds {np.shape(tree.step)[0]} stacked runs; save one: "
                       "jax.tree_util.tree_map(lambda a: a[k], state)")
    return {"params": tree.params, **tree.model_state}
  return tree


def save_params(path, params: Any) -> Path:
  """Writes the pytree ``params`` to ``path`` (msgpack), atomically; a
  :class:`~jaxphys.TrainState` is written as its parameters and model state (BatchNorm
  statistics), without the optimiser state.

  >>> import tempfile, jax.numpy as jnp
  >>> path = save_params(tempfile.mkdtemp() + "/p.msgpack", {"w": jnp.ones(2)})
  >>> load_params(path, {"w": jnp.zeros(2)})["w"].tolist()
  [1.0, 1.0]
  """
  path = Path(path)
  atomic_write_bytes(path, serialization.msgpack_serialize(
      serialization.to_state_dict(jax.device_get(_as_variables(params)))))
  return path


def _read_msgpack(path: Path) -> Any:
  if not path.is_file():
    raise DataError(f"{path}: no such checkpoint file")
  try:
    return serialization.msgpack_restore(path.read_bytes())
  except Exception as e:  # msgpack raises several types on corrupt input
    raise DataError(f"{path}: not a valid checkpoint ({type(e).__name__})") from None


def load_params(path, target: Any) -> Any:
  """Reads ``path`` into the structure of ``target`` (a pytree of arrays with the expected
  shapes, e.g. freshly initialised parameters). With a :class:`~jaxphys.TrainState` as
  ``target``, returns it with the stored parameters and model state (as
  :func:`save_params` writes a state); its step and optimiser state are kept.

  >>> import tempfile, jax.numpy as jnp
  >>> path = save_params(tempfile.mkdtemp() + "/p.msgpack", {"w": jnp.ones(2)})
  >>> load_params(path, {"w": jnp.zeros(3)})
  Traceback (most recent call last):
  ...
  jaxphys.errors.DataError: ...: parameter ['w'] has shape (2,), the model expects (3,)
  """
  path = Path(path)
  state = _read_msgpack(path)
  tree = _as_variables(target)
  try:
    restored = serialization.from_state_dict(tree, state)
  except (ValueError, KeyError, TypeError) as e:
    raise DataError(f"{path}: checkpoint does not match the model ({str(e).splitlines()[0]})") from None
  _check_shapes(str(path), restored, tree)
  if tree is not target:
    restored = dict(restored)
    return target.replace(params=restored.pop("params"), model_state=restored)
  return restored


def _settings(model) -> dict:
  """A linen module's constructor settings (its dataclass fields), as JSON values."""
  out = {}
  for f in dataclasses.fields(model):
    if f.name in ("parent", "name") or not f.init:
      continue
    value = getattr(model, f.name)
    try:
      json.dumps(value)
    except TypeError:
      raise ValueError(f"save_model: setting {f.name}={value!r} of {type(model).__name__} is not "
                       "JSON-able (give functions by name, e.g. activation='relu')") from None
    out[f.name] = value
  return out


def save_model(path, model, state) -> Path:
  """Saves ``model`` for inference in the folder ``path``: ``model.json`` (the module's
  class as an import path and its settings) and ``variables.msgpack`` (parameters and
  model state of ``state``, a one-run :class:`~jaxphys.TrainState` or parameters).
  :func:`load_model` rebuilds it. The class must live in an importable module, not in
  the training script run as ``__main__``.

  >>> import tempfile, jax, optax, jaxphys as jp
  >>> model = jp.MLP((4, 2))
  >>> state = jp.create_train_state(jax.random.key(0), model, optax.sgd(0.1), jax.numpy.ones((1, 3)))
  >>> predictor = load_model(save_model(tempfile.mkdtemp(), model, state))
  >>> predictor(jax.numpy.ones((5, 3))).shape
  (5, 2)
  """
  cls = type(model)
  if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
    raise ValueError(f"save_model: {cls.__qualname__} is defined in a script or a function; "
                     "define it in an importable module so that it can be loaded without the script")
  path = Path(path)
  record = {"format": _MODEL_FORMAT, "class": f"{cls.__module__}:{cls.__qualname__}",
            "settings": _settings(model)}
  save_params(path / "variables.msgpack", state)
  write_json(path / "model.json", record)  # last: its presence marks a complete save
  return path


def _tuples(value):
  """JSON lists back to tuples (linen settings are hashable)."""
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


class Predictor:
  """A loaded model: ``predictor(x, batch_size=1024) -> logits`` (``train=False``).

  Attributes: ``model`` (the linen module) and ``variables`` (its parameters and state).
  """

  def __init__(self, model, variables: dict):
    from jaxphys.train import predict
    self.model, self.variables = model, variables
    self._predict = jax.jit(lambda v, x, batch_size: predict(model.apply, v, x, batch_size=batch_size),
                            static_argnums=2)

  def __call__(self, x, *, batch_size: int = 1024) -> jax.Array:
    """Logits for ``x`` ``(n, ...)``, computed in batches of ``batch_size``."""
    return self._predict(self.variables, x, int(batch_size))


def load_model(path) -> Predictor:
  """The model saved by :func:`save_model` in ``path``, ready to call (see
  :class:`Predictor`). Imports the module that defines its class.

  >>> load_model("/nonexistent")
  Traceback (most recent call last):
  ...
  jaxphys.errors.DataError: /nonexistent: no saved model (model.json missing)
  """
  import flax.linen as nn

  path = Path(path)
  if not (path / "model.json").is_file():
    raise DataError(f"{path}: no saved model (model.json missing)")
  try:
    record = json.loads((path / "model.json").read_text())
    module_name, qualname = record["class"].split(":")
    settings = record["settings"]
  except (ValueError, KeyError, TypeError, AttributeError):
    raise DataError(f"{path / 'model.json'}: not a saved-model record") from None
  if record.get("format") != _MODEL_FORMAT:
    raise DataError(f"{path / 'model.json'}: format {record.get('format')!r}, expected {_MODEL_FORMAT!r}")
  try:
    cls = importlib.import_module(module_name)
    for part in qualname.split("."):
      cls = getattr(cls, part)
  except (ImportError, AttributeError):
    raise DataError(f"{path}: model class {record['class']} cannot be imported") from None
  if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
    raise DataError(f"{path}: {record['class']} is not a flax.linen.Module")
  try:
    model = cls(**{k: _tuples(v) for k, v in settings.items()})
  except TypeError as e:
    raise DataError(f"{path}: settings do not fit {qualname} ({e})") from None
  return Predictor(model, _read_msgpack(path / "variables.msgpack"))


def _check_shapes(where: str, restored: Any, target: Any) -> None:
  for (kp, a), b in zip(jax.tree_util.tree_leaves_with_path(restored), jax.tree_util.tree_leaves(target)):
    if np.shape(a) != np.shape(b):
      raise DataError(f"{where}: parameter {jax.tree_util.keystr(kp)} has shape {np.shape(a)}, "
                      f"the model expects {np.shape(b)}")


def _digest(tree: Any) -> str:
  """SHA-256 of the leaves of ``tree`` (dtype, shape and bytes, in tree order)."""
  h = hashlib.sha256()
  for leaf in jax.tree_util.tree_leaves(tree):
    a = np.ascontiguousarray(leaf)
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()


class Checkpointer:
  """Periodic, atomic training checkpoints in ``directory`` through Orbax.

  A checkpoint is labelled by the number of epochs done and holds the
  :class:`~jaxphys.train.TrainState`, the PRNG key given to :func:`~jaxphys.fit`, and
  a JSON record of the epochs done, the metric history and a SHA-256 digest of the
  state. Orbax writes each into a temporary directory and renames it when complete, so
  a crash mid-write never leaves one that loads; the digest makes a damaged or edited
  checkpoint an error, never silently different numbers. ``fit(..., checkpointer=c)``
  saves after every ``every`` epochs and after the last; ``fit(..., checkpointer=c,
  resume=True)`` continues from the latest.

  Args:
    directory: where checkpoints live (created if needed).
    every: epochs between checkpoints.
    keep: how many of the latest to keep.
    best_metric: a history key (e.g. ``"eval_loss"``): the best checkpoint by it is kept
      as well (mean over runs); ``best_mode`` ``"min"`` or ``"max"``.
  """

  def __init__(self, directory, *, every: int = 1, keep: int = 2, best_metric: Optional[str] = None,
               best_mode: str = "min"):
    import orbax.checkpoint as ocp
    from orbax.checkpoint import checkpoint_managers as policies

    if int(every) < 1 or int(keep) < 1:
      raise ValueError(f"Checkpointer: every and keep must be positive, got every={every}, keep={keep}")
    if best_mode not in ("min", "max"):
      raise ValueError(f"Checkpointer: best_mode must be 'min' or 'max', got {best_mode!r}")
    self.directory, self.every, self.best_metric = Path(directory).absolute(), int(every), best_metric
    keepers = [policies.LatestN(int(keep))]
    if best_metric is not None:
      keepers.append(policies.BestN(get_metric_fn=lambda m: m[best_metric], reverse=best_mode == "min", n=1))
    self._ocp = ocp
    self._manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
        enable_async_checkpointing=False, create=True, cleanup_tmp_directories=True,
        preservation_policy=policies.AnyPreservationPolicy(keepers)))

  def latest_epoch(self) -> Optional[int]:
    """Epochs done in the latest complete checkpoint, or None."""
    return self._manager.latest_step()

  def all_epochs(self) -> list:
    """Epochs done of every kept checkpoint, ascending."""
    return sorted(self._manager.all_steps())

  def save(self, epochs_done: int, state, key, history: dict) -> None:
    """Writes the checkpoint after ``epochs_done`` epochs (replacing none: labels are unique)."""
    ocp = self._ocp
    state = jax.device_get(state)
    record = {"epochs_done": int(epochs_done), "sha256": _digest(state),
              "history": {k: np.asarray(v).tolist() for k, v in history.items()}}
    metrics = None
    if self.best_metric is not None and self.best_metric in history:
      metrics = {self.best_metric: float(np.mean(np.asarray(history[self.best_metric])[-1]))}
    self._manager.save(int(epochs_done), metrics=metrics, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        key=ocp.args.StandardSave(np.asarray(jax.random.key_data(key))),
        record=ocp.args.JsonSave(record)))
    self._manager.wait_until_finished()

  def restore(self, state, key, epochs_done: Optional[int] = None):
    """The checkpoint after ``epochs_done`` epochs (default: the latest) as
    ``(epochs_done, state, history)``, shaped like ``state``; None if there is none.

    Raises:
      DataError: the checkpoint cannot be read, was written for another model shape or
        optimiser, or with another key (seed).
    """
    ocp = self._ocp
    step = self.latest_epoch() if epochs_done is None else int(epochs_done)
    if step is None:
      return None
    where = str(self.directory / str(step))
    target = jax.device_get(state)
    key_data = np.asarray(jax.random.key_data(key))
    try:
      out = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), key=ocp.args.StandardRestore(key_data),
          record=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax and TensorStore raise many types on damaged files
      first = (str(e).strip().splitlines() or [""])[0][:200]
      raise DataError(f"{where}: checkpoint cannot be read ({type(e).__name__}: {first})") from None
    _check_shapes(where, out["state"], target)
    if not np.array_equal(np.asarray(out["key"]), key_data):
      raise DataError(f"{where}: checkpoint was written with a different key (seed); "
                      "resume with the run's original seed")
    record = out["record"]
    if not isinstance(record, dict) or record.get("epochs_done") != step or "history" not in record:
      raise DataError(f"{where}: checkpoint record is damaged")
    restored = jax.tree_util.tree_map(lambda a, t: np.asarray(a, dtype=np.asarray(t).dtype), out["state"], target)
    if _digest(restored) != record.get("sha256"):
      raise DataError(f"{where}: checkpoint contents do not match their SHA-256 digest (damaged or edited)")
    history = {k: np.asarray(v) for k, v in record["history"].items()}
    return step, restored, history

  def close(self) -> None:
    self._manager.close()
