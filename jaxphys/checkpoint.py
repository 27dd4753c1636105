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
import os
import struct
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import flax.linen
import jax
import numpy as np
from flax import serialization

from jaxphys._io import atomic_write_bytes, remove_stale_temporaries, write_json
from jaxphys.errors import ConfigMismatch, DataError

PathLike = Union[str, os.PathLike]

__all__ = ["Checkpointer", "config_differences", "save_params", "load_params", "save_model",
           "load_model", "Predictor"]

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


def save_params(path: PathLike, params: Any) -> Path:
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


def load_params(path: PathLike, target: Any) -> Any:
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


def save_model(path: PathLike, model: flax.linen.Module, state: Any) -> Path:
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


def load_model(path: PathLike) -> Predictor:
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


# A checkpoint file: _MAGIC, the SHA-256 of everything after it (32 bytes), the length of
# the record (8 bytes, little-endian), the record (JSON: epochs done, history, config,
# changes, best-metric value), then the state and key (Flax msgpack). The digest covers
# all that is restored; the record can be parsed alone (for retention) without the state.
_MAGIC = b"jaxphys checkpoint 1\n"
_HEAD = len(_MAGIC) + 32 + 8


def _as_json(obj: Any, what: str) -> Any:
  """``obj`` as JSON reads it back (tuples become lists); ValueError if it is not JSON."""
  try:
    return json.loads(json.dumps(obj, sort_keys=True))
  except (TypeError, ValueError) as e:
    raise ValueError(f"{what}: not JSON-able ({e})") from None


def config_differences(stored: Optional[dict], given: Optional[dict]) -> dict:
  """Setting name -> ``(stored, given)`` for every setting that differs between two
  configurations (a missing setting is ``None``).

  >>> config_differences({"lr": 0.001, "epochs": 3}, {"lr": 0.05, "epochs": 3, "quiet": True})
  {'lr': (0.001, 0.05), 'quiet': (None, True)}
  """
  stored, given = _as_json(stored or {}, "config"), _as_json(given or {}, "config")
  return {k: (stored.get(k), given.get(k)) for k in sorted(set(stored) | set(given), key=str)
          if not _same(stored.get(k), given.get(k))}


def _same(a: Any, b: Any) -> bool:
  """Equal settings: ``==`` (so ``1 == 1.0``), or the same JSON text (so NaN equals NaN)."""
  return a == b or json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _encode(record: dict, state: Any, key_data: np.ndarray) -> bytes:
  body = json.dumps(record, sort_keys=True).encode()
  arrays = serialization.msgpack_serialize({"state": serialization.to_state_dict(state), "key": key_data})
  rest = struct.pack("<Q", len(body)) + body + arrays
  return _MAGIC + hashlib.sha256(rest).digest() + rest


class Checkpointer:
  """Periodic, atomic training checkpoints in ``directory``; a callback of
  :func:`~jaxphys.fit`.

  A checkpoint is one file, ``directory/epoch_<epochs done>.ckpt``, holding the
  :class:`~jaxphys.TrainState`, the run's PRNG key and a record: the epochs done, the
  metric history, the run's ``config``, the settings changed at earlier resumes and the
  best-metric value, all covered by one SHA-256 digest, so a damaged or edited checkpoint
  is an error, never silently different numbers. Each is written to a temporary file
  renamed when complete (a killed write leaves nothing that loads; its temporary file is
  removed when a Checkpointer next opens the folder), with the umask's file mode.

  As a callback it saves after every ``every`` epochs and after the last; with
  ``resume=True`` it restores the latest checkpoint at the start of training (a fresh
  run without ``resume`` replaces the folder's checkpoints when it saves its first).
  Kept after each save: the last ``keep`` and, with ``best_metric``, the best by it
  (read from the checkpoints themselves, so this holds across resumes; one that does not
  verify is never the best).

  The states this library trains fit in memory on one host, so one file per checkpoint
  suffices. Orbax's ``CheckpointManager`` was used before; a write it failed (a full disk)
  left background threads that printed tracebacks after the error, which the one-line
  errors promised here cannot allow.

  Args:
    directory: where checkpoints live (created if needed).
    every: epochs between checkpoints (>= 1).
    keep: how many of the latest to keep (>= 1).
    best_metric: a history key (e.g. ``"eval_loss"``): the best checkpoint by it is kept
      as well (mean over runs; the first of equal ones); ``best_mode`` ``"min"`` or
      ``"max"``.
    resume: continue from the latest checkpoint (see :meth:`on_train_begin`).
    config: a JSON-able dict identifying the run (settings, the data's identity), stored
      with each checkpoint; resuming with any other value of a setting not in
      ``allowed_changes`` raises :class:`~jaxphys.errors.ConfigMismatch`. None: not
      checked.
    allowed_changes: settings that may differ on resume (e.g. ``("epochs", "quiet")``);
      the changes are recorded in :attr:`changes` and in later checkpoints.

  >>> import tempfile, jax, optax, jaxphys as jp
  >>> model, tx = jp.MLP((4, 2)), optax.sgd(0.1)
  >>> state = jp.create_train_state(jax.random.key(0), model, tx, np.zeros((1, 3)))
  >>> ckpt = Checkpointer(tempfile.mkdtemp(), config={"lr": 0.1})
  >>> ckpt.save(1, state, jax.random.key(1), {"train_loss": [0.7]})
  >>> ckpt.latest_epoch()
  1
  >>> epochs, restored, history = ckpt.restore(state, jax.random.key(1))
  >>> epochs, history["train_loss"].tolist()
  (1, [0.7])
  """

  def __init__(self, directory, *, every: int = 1, keep: int = 2, best_metric: Optional[str] = None,
               best_mode: str = "min", resume: bool = False, config: Optional[dict] = None,
               allowed_changes: Sequence[str] = ()):
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in (every, keep)):
      raise ValueError(f"Checkpointer: every and keep must be positive integers, got every={every!r}, keep={keep!r}")
    if best_mode not in ("min", "max"):
      raise ValueError(f"Checkpointer: best_mode must be 'min' or 'max', got {best_mode!r}")
    if best_metric is not None and not isinstance(best_metric, str):
      raise ValueError(f"Checkpointer: best_metric must be a metric name or None, got {best_metric!r}")
    if config is not None and not isinstance(config, dict):
      raise ValueError(f"Checkpointer: config must be a dict or None, got {type(config).__name__}")
    if isinstance(allowed_changes, str):
      raise ValueError(f"Checkpointer: allowed_changes must be a sequence of names, got {allowed_changes!r}")
    self.directory = Path(directory).absolute()
    self.every, self.keep, self.best_metric, self.best_mode = int(every), int(keep), best_metric, best_mode
    self.resume, self.allowed_changes = bool(resume), tuple(allowed_changes)
    self.config = None if config is None else _as_json(config, "Checkpointer: config")
    self.changes: list = []  # [{"at_epoch": n, "setting": k, "from": old, "to": new}, ...]
    self.resumed_from: Optional[int] = None  # epochs done in the checkpoint resumed from
    self._replace_existing = False
    self._unsaved = None  # (epochs done, state, history) of an epoch not yet saved
    remove_stale_temporaries(self.directory)

  # ------------------------------------------------------------------ callback hooks

  def on_train_begin(self, loop) -> None:
    """With ``resume=True``: restores the latest checkpoint (if any) into ``loop.state``,
    ``loop.initial_epoch`` and ``loop.history``, after checking its config against
    ``config``. Without: the folder's checkpoints are replaced from the first save on."""
    if not self.resume:
      self._replace_existing = True
      return
    restored = self.restore(loop.state, loop.key)
    if restored is None:
      return
    epochs_done, state, history = restored
    if epochs_done > loop.epochs:
      raise ConfigMismatch(f"{self.path(epochs_done)}: the checkpoint has {epochs_done} epochs done, "
                           f"more than the {loop.epochs} asked for; ask for at least {epochs_done}",
                           {"epochs": (epochs_done, loop.epochs)})
    loop.state, loop.initial_epoch = state, epochs_done
    loop.history = {k: list(v) for k, v in history.items()}

  def on_epoch_end(self, loop, epoch: int, logs: dict) -> None:
    """Saves after every ``every`` epochs and after the last (``epoch`` is 0-based;
    ``loop.history`` holds this epoch's entry)."""
    done = int(epoch) + 1
    history = {k: list(v) for k, v in loop.history.items()}
    for k, v in logs.items():  # a loop that appends after the callbacks
      if len(history.get(k, ())) == done - 1:
        history.setdefault(k, []).append(v)
    self._unsaved = (done, loop.state, history)
    if done % self.every == 0 or done >= loop.epochs or getattr(loop, "stop_training", False):
      self.save(done, loop.state, loop.key, history)
      self._unsaved = None

  def on_train_end(self, loop) -> None:
    """Saves the last epoch if training stopped early (``loop.stop_training``) between
    checkpoints, unless another callback has replaced ``loop.state`` since."""
    unsaved, self._unsaved = self._unsaved, None
    if unsaved is not None and unsaved[1] is loop.state:
      self.save(unsaved[0], loop.state, loop.key, unsaved[2])

  # ------------------------------------------------------------------ direct use

  def path(self, epochs_done: int) -> Path:
    """The file of the checkpoint after ``epochs_done`` epochs."""
    return self.directory / f"epoch_{int(epochs_done)}.ckpt"

  def all_epochs(self) -> list[int]:
    """Epochs done of every kept checkpoint, ascending."""
    if not self.directory.is_dir():
      return []
    names = (p.name[len("epoch_"):-len(".ckpt")] for p in self.directory.glob("epoch_*.ckpt"))
    return sorted(int(n) for n in names if n.isdigit())

  def latest_epoch(self) -> Optional[int]:
    """Epochs done in the latest complete checkpoint, or None."""
    epochs = self.all_epochs()
    return epochs[-1] if epochs else None

  def _metric(self, history: dict) -> Optional[float]:
    if self.best_metric is None:
      return None
    if self.best_metric not in history:
      raise ValueError(f"Checkpointer: best_metric {self.best_metric!r} is not a logged metric "
                       f"(logged: {', '.join(sorted(history)) or 'none'})")
    values = np.asarray(history[self.best_metric])
    if not len(values):
      return None
    value = float(np.mean(values[-1]))
    return value if np.isfinite(value) else None  # never the best

  def save(self, epochs_done: int, state, key, history: dict) -> None:
    """Writes the checkpoint after ``epochs_done`` epochs, then removes those no longer
    kept.

    Raises:
      OutputError: it cannot be written (a full disk, ...); one line naming the file.
    """
    step = int(epochs_done)
    history = {k: np.asarray(v) for k, v in history.items()}
    record = _as_json({"epochs_done": step, "config": self.config, "changes": self.changes,
                       "metric": self._metric(history),
                       "history": {k: v.tolist() for k, v in history.items()},
                       "history_dtypes": {k: str(v.dtype) for k, v in history.items()}}, "history")
    payload = _encode(record, jax.device_get(state), np.asarray(jax.random.key_data(key)))
    atomic_write_bytes(self.path(step), payload)
    if self._replace_existing:  # a fresh run: the folder's old checkpoints go, once this one is written
      for old in self.all_epochs():
        if old != step:
          self.path(old).unlink(missing_ok=True)
      self._replace_existing = False
    self._retain()

  def _retain(self) -> None:
    """Removes every checkpoint but the last ``keep`` and the best by ``best_metric``."""
    epochs = self.all_epochs()
    kept = set(epochs[-self.keep:])
    if self.best_metric is not None:
      metrics = {}
      for e in epochs:
        try:
          metrics[e] = self._read(self.path(e), arrays=False)[0].get("metric")
        except DataError:
          pass  # damaged or edited: never the best; goes unless among the last
      scored = [(m if self.best_mode == "min" else -m, e) for e, m in metrics.items()
                if isinstance(m, (int, float))]
      if scored:
        kept.add(min(scored)[1])
    for e in epochs:
      if e not in kept:
        self.path(e).unlink(missing_ok=True)

  def restore(self, state, key, epochs_done: Optional[int] = None) -> Optional[tuple[int, Any, dict]]:
    """The checkpoint after ``epochs_done`` epochs (default: the latest) as
    ``(epochs_done, state, history)``, shaped like ``state``; None if there is none.

    Raises:
      ConfigMismatch: it was written with other settings than ``config`` (one line
        naming every difference not in ``allowed_changes``).
      DataError: it cannot be read, was edited or damaged, was written for another model
        shape or optimiser, or with another key (seed).
    """
    step = self.latest_epoch() if epochs_done is None else int(epochs_done)
    if step is None:
      return None
    where = self.path(step)
    record, arrays = self._read(where)
    if record.get("epochs_done") != step:
      raise DataError(f"{where}: checkpoint record is for {record.get('epochs_done')} epochs, "
                      f"its name says {step}")
    self._check_config(where, record)
    target = jax.device_get(state)
    try:
      restored = serialization.from_state_dict(target, arrays["state"])
    except (ValueError, KeyError, TypeError) as e:
      raise DataError(f"{where}: checkpoint does not match the model or optimiser "
                      f"({str(e).splitlines()[0]})") from None
    _check_shapes(str(where), restored, target)
    for (kp, a), b in zip(jax.tree_util.tree_leaves_with_path(restored), jax.tree_util.tree_leaves(target)):
      if np.asarray(a).dtype != np.asarray(b).dtype:
        raise DataError(f"{where}: {jax.tree_util.keystr(kp)} is {np.asarray(a).dtype} in the checkpoint, "
                        f"the state expects {np.asarray(b).dtype}")
    key_data = np.asarray(jax.random.key_data(key))
    if not np.array_equal(np.asarray(arrays["key"]), key_data):
      raise DataError(f"{where}: checkpoint was written with a different key (seed); "
                      "resume with the run's original seed")
    history = {k: np.asarray(v, np.dtype(record["history_dtypes"][k])) for k, v in record["history"].items()}
    self.resumed_from = step
    return step, restored, history

  def _read(self, where: Path, arrays: bool = True) -> tuple[dict, Optional[dict]]:
    """The verified record and arrays (None unless ``arrays``) of the checkpoint file ``where``."""
    try:
      raw = where.read_bytes()
    except OSError as e:
      raise DataError(f"{where}: checkpoint cannot be read ({e.strerror})") from None
    if len(raw) < _HEAD or not raw.startswith(_MAGIC):
      raise DataError(f"{where}: not a jaxphys checkpoint (damaged or of another format)")
    rest = raw[len(_MAGIC) + 32:]
    if hashlib.sha256(rest).digest() != raw[len(_MAGIC):len(_MAGIC) + 32]:
      raise DataError(f"{where}: checkpoint contents do not match their SHA-256 digest (damaged or edited)")
    (n,) = struct.unpack("<Q", rest[:8])
    try:  # intact (the digest matched) but perhaps written by something else
      record = json.loads(rest[8:8 + n])
      assert isinstance(record["history"], dict) and set(record["history_dtypes"]) == set(record["history"])
      stored = serialization.msgpack_restore(rest[8 + n:]) if arrays else None
      assert stored is None or set(stored) == {"state", "key"}
    except Exception:
      raise DataError(f"{where}: checkpoint record is damaged") from None
    return record, stored

  def _check_config(self, where: Path, record: dict) -> None:
    """ConfigMismatch naming every difference not allowed; records the allowed ones."""
    if self.config is None:
      return
    differences = config_differences(record.get("config"), self.config)
    refused = {k: d for k, d in differences.items() if k not in self.allowed_changes}
    if refused:
      listed = "; ".join(f"{k}: {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in refused.items())
      raise ConfigMismatch(f"{where}: the checkpoint was written with other settings ({listed}); "
                           "resume with the same settings, or start afresh without resuming",
                           refused)
    self.changes = list(record.get("changes") or []) + [
        {"at_epoch": record["epochs_done"], "setting": k, "from": a, "to": b}
        for k, (a, b) in differences.items()]

  def close(self) -> None:
    """Nothing to release (kept for code written against the Orbax version)."""
