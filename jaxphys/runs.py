"""Output folders of runs: one run at a time per folder, results published as a set.

A run writes every output file (results, parameters, plots, logs) into a folder of its
own; publishing the run replaces one symbolic link, so a reader sees either the previous
complete set or the new one, never a mix, whatever happens to the run (killed, diverged,
a full disk). The layout of an output folder ``out``::

    out/
      .lock               held (``flock``) by the run using the folder; holds its PID
      latest -> runs/<id> the published result set (a relative symlink, swapped atomically)
      runs/<id>/          one folder per run; a run's staging folder while it runs
      checkpoints/        training checkpoints, kept across runs (for resuming)
      failures/<id>.json  the record of each run that failed, beside the published set

``<id>`` is the run's start time (UTC) and process id, e.g. ``20261204-213000-4242``
(then ``-2``, ``-3``, ... if a run or failure record of that name exists).
The lock is the operating system's: it goes with the process that held it, so a killed
run's lock is taken over by the next run. A run folder that is neither published nor
running (a killed run's) is removed when the next run opens ``out``; the previous
published set is removed once a new one is published.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from jaxphys._io import fsync_dir, output_error, write_json
from jaxphys.errors import DataError, OutputError, RunLocked

PathLike = Union[str, os.PathLike]

__all__ = ["RunDirectory", "published_results"]

_LATEST = "latest"


def _holder(fd: int, seconds: float = 1.0) -> Optional[int]:
  """The PID in a lock file held by another process, or None. The holder writes it just
  after taking the lock, so for up to ``seconds`` an empty file, or a PID left by an
  earlier run whose process is gone, is read again."""
  deadline = time.monotonic() + seconds
  while True:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    if text.isdigit() and _alive(int(text)):
      return int(text)
    if time.monotonic() > deadline:
      return None
    time.sleep(0.01)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:  # another user's process: it exists
    return True
  return True


def _lock(out: Path) -> int:
  """An open descriptor of ``out/.lock`` holding its exclusive lock; RunLocked if held."""
  path = out / ".lock"
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
  except OSError as e:
    raise output_error(path, e) from None
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    pid = _holder(fd) if e.errno in (errno.EWOULDBLOCK, errno.EACCES) else None
    os.close(fd)
    if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
      raise output_error(path, e) from None
    raise RunLocked(f"{out}: another run is using this output folder (process "
                    f"{pid if pid is not None else 'unknown'}); wait for it to finish or "
                    "choose another folder", directory=out, pid=pid) from None
  try:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
  except OSError as e:  # a full disk
    os.close(fd)
    raise output_error(path, e) from None
  return fd


def _fsync_tree(folder: Path) -> None:
  """Flushes every regular file and folder under ``folder`` (itself included) to the disk
  (links and special files are not opened: a FIFO would block).

  Raises:
    OutputError: one of them cannot be flushed; one line naming it.
  """
  for root, _, files in os.walk(folder):
    for path in (os.path.join(root, name) for name in files):
      if not os.path.isfile(path) or os.path.islink(path):
        continue
      try:
        fd = os.open(path, os.O_RDONLY)
        try:
          os.fsync(fd)
        finally:
          os.close(fd)
      except OSError as e:
        raise output_error(path, e) from None
    try:
      fsync_dir(Path(root))
    except OSError as e:
      raise output_error(root, e) from None


def _fsync_entry(folder: Path) -> None:
  """Flushes ``folder``'s own name in its parent (a new folder's entry) to the disk."""
  try:
    fsync_dir(folder.parent)
  except OSError as e:
    raise output_error(folder.parent, e) from None


def _check_links(out: Path) -> None:
  """OutputError unless ``out`` can hold the symbolic link that publishing swaps (some
  file systems, e.g. FAT, cannot; a folder named ``latest`` is in the way): found before
  the run does any work."""
  latest = out / _LATEST
  if latest.exists() and not latest.is_symlink():
    raise OutputError(f"{latest}: exists and is not the link to the published results; move it "
                      "away or choose another output folder", path=latest)
  probe = out / f".{_LATEST}.{os.getpid()}"
  try:
    probe.unlink(missing_ok=True)
    os.symlink("runs", probe)
    probe.unlink()
  except OSError as e:
    if e.errno not in (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP):
      raise output_error(probe, e) from None
    raise OutputError(f"{out}: this file system cannot hold symbolic links, which publishing a run "
                      f"needs ({e.strerror}); choose an output folder on another one", path=out) from None


def _plain(obj: Any) -> Any:
  """``obj`` as JSON can hold it: NumPy and JAX scalars and arrays as Python numbers and lists,
  NaN and infinities as the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
  if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):  # NumPy, JAX
    obj = np.asarray(obj).tolist()
  if isinstance(obj, dict):
    return {k: _plain(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_plain(v) for v in obj]
  if isinstance(obj, float) and not math.isfinite(obj):
    return str(obj)
  return obj


def published_results(out: PathLike) -> Path:
  """The folder of the published result set of ``out`` (where ``results.json`` is).

  Raises:
    DataError: no run has published into ``out``, or its result set was removed.

  >>> import tempfile
  >>> out = tempfile.mkdtemp()
  >>> with RunDirectory(out) as run:
  ...   _ = (run.staging / "results.json").write_text("{}")
  ...   _ = run.publish()
  >>> (published_results(out) / "results.json").read_text()
  '{}'
  """
  out = Path(out)
  try:
    target = os.readlink(out / _LATEST)
  except FileNotFoundError:
    raise DataError(f"{out}: no published results (no run has finished there)") from None
  except OSError:
    raise DataError(f"{out / _LATEST}: not a link to a result set") from None
  if not (out / target).is_dir():
    raise DataError(f"{out / _LATEST}: points to {target}, which is missing")
  return out / target


class RunDirectory:
  """The output folder ``out`` of one run, locked for it (see the module's docstring).

  Use as a context manager (or call :meth:`close`); the lock is taken when it is
  created. Write every output file into :attr:`staging`, then :meth:`publish`; without
  it the staged files are removed on exit and the published set stays as it was.

  Attributes:
    out: the output folder.
    run_id: this run's name, ``<UTC start time>-<pid>``.
    staging: ``out/runs/<run_id>``, empty at the start.
    checkpoints: ``out/checkpoints``, kept across runs.

  Raises:
    RunLocked: another process uses ``out``; one line naming the folder and its PID.
    OutputError: ``out`` cannot be created or written.

  >>> import tempfile
  >>> out = tempfile.mkdtemp()
  >>> with RunDirectory(out) as run:
  ...   _ = (run.staging / "results.json").write_text('{"accuracy": 0.9}')
  ...   published = run.publish()
  >>> published == published_results(out)
  True
  """

  def __init__(self, out):
    if isinstance(out, str) and not out.strip():
      raise ValueError("out: the output folder is an empty path")
    self.out = Path(out)
    if self.out.exists() and not self.out.is_dir():
      raise OutputError(f"{self.out}: exists and is not a folder", path=self.out)
    try:
      self.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise output_error(self.out, e) from None
    self._lock_fd: Optional[int] = _lock(self.out)
    self._published = False
    try:
      _check_links(self.out)
      self.run_id = self._new_id()
      self._remove_orphans()
      self.staging = self.out / "runs" / self.run_id
      self.checkpoints = self.out / "checkpoints"
      for folder in (self.staging, self.checkpoints):
        try:
          folder.mkdir(parents=True, exist_ok=folder is self.checkpoints)
        except OSError as e:
          raise output_error(folder, e) from None
    except BaseException:
      self.close()
      raise

  def _new_id(self) -> str:
    stamp = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}"
    run_id, n = stamp, 1  # a run of this process in the same second may have left a record
    while (self.out / "runs" / run_id).exists() or (self.out / "failures" / f"{run_id}.json").exists():
      n += 1
      run_id = f"{stamp}-{n}"
    return run_id

  def _published_name(self) -> Optional[str]:
    try:
      return os.path.basename(os.readlink(self.out / _LATEST))
    except OSError:
      return None

  def _remove_orphans(self) -> None:
    """Removes run folders of runs that ended without publishing (killed), and
    half-made links; we hold the lock, so no other run is writing."""
    keep = self._published_name()
    runs = self.out / "runs"
    if runs.is_dir():
      for folder in runs.iterdir():
        if folder.name != keep:
          shutil.rmtree(folder, ignore_errors=True)
    for link in self.out.glob(f".{_LATEST}.*"):
      link.unlink(missing_ok=True)

  def publish(self) -> Path:
    """Makes the staged files the published result set of ``out`` (atomically, as a
    set) and removes the previous set. Returns the published folder."""
    if self._lock_fd is None:
      raise ValueError(f"{self.out}: the run is closed; publish before leaving the `with` block")
    if self._published:
      raise ValueError(f"{self.staging}: this run is already published")
    if not self.staging.is_dir():  # a link to nothing would replace the good set
      raise OutputError(f"{self.staging}: the staging folder is missing; nothing to publish",
                        path=self.staging)
    previous = self._published_name()
    tmp = self.out / f".{_LATEST}.{os.getpid()}"
    _fsync_tree(self.staging)
    _fsync_entry(self.staging)
    try:
      tmp.unlink(missing_ok=True)
      os.symlink(os.path.join("runs", self.run_id), tmp)
      os.replace(tmp, self.out / _LATEST)
    except OSError as e:
      tmp.unlink(missing_ok=True)
      raise output_error(self.out / _LATEST, e) from None
    self._published = True  # whatever follows, the link names this run's set now
    try:
      fsync_dir(self.out)
    except OSError as e:
      raise output_error(self.out / _LATEST, e) from None
    if previous and previous != self.run_id:
      shutil.rmtree(self.out / "runs" / previous, ignore_errors=True)
    return self.staging

  def record_failure(self, record: dict) -> Path:
    """Writes ``record`` to ``out/failures/<run_id>.json``, beside the published set,
    which stays as it was. NumPy values are written as numbers and lists, NaN and
    infinities (a diverged run's) as ``"nan"``, ``"inf"``, ``"-inf"``. Returns the file's
    path."""
    if not isinstance(record, dict):
      raise ValueError(f"record: expected a dict, got {type(record).__name__}")
    path = self.out / "failures" / f"{self.run_id}.json"
    write_json(path, _plain(record))
    return path

  def close(self) -> None:
    """Removes the staged files unless published, and releases the lock."""
    if self._lock_fd is None:
      return
    # A publish interrupted just after its swap has published all the same.
    if not self._published and hasattr(self, "staging") and self._published_name() != self.run_id:
      shutil.rmtree(self.staging, ignore_errors=True)
    os.ftruncate(self._lock_fd, 0)
    os.close(self._lock_fd)
    self._lock_fd = None

  def __enter__(self) -> "RunDirectory":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __repr__(self) -> str:
    return f"RunDirectory({str(self.out)!r}, run_id={self.run_id!r})"
