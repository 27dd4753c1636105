"""File helpers shared by the data, checkpoint, run and plotting modules.

Every file appears atomically (a temporary file beside it, renamed into place), with the
mode the user's umask gives a new file (0644 under umask 0022), and an ``OSError`` while
writing it (a full disk, no permission, a read-only file system) becomes a one-line
:class:`~jaxphys.errors.OutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

from jaxphys.errors import OutputError

_UMASK_LOCK = threading.Lock()


def umask() -> int:
  """The process' umask, read without changing it where the OS allows (Linux)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  with _UMASK_LOCK:  # elsewhere: set and restore (briefly process-wide)
    mask = os.umask(0o077)
    os.umask(mask)
  return mask


def file_mode() -> int:
  """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
  return 0o666 & ~umask()


def output_error(path, error: OSError) -> OutputError:
  """``error`` as one line naming ``path``: ``"<path>: cannot write (<reason>)"``."""
  reason = error.strerror or (str(error).splitlines() or [type(error).__name__])[0]
  return OutputError(f"{path}: cannot write ({reason})", path=Path(path))


def _ours(error: OSError, tmp: str) -> bool:
  """Whether ``error`` came from writing our file (not from, say, reading another one
  inside the ``with`` block)."""
  return error.filename is None or os.fspath(error.filename) == tmp


def remove_stale_temporaries(directory) -> None:
  """Removes the temporary files that :func:`atomic_open` calls of processes that no
  longer run left in ``directory`` (a killed write)."""
  directory = Path(directory)
  if not directory.is_dir():
    return
  for tmp in directory.glob(".*.jaxphys-*.tmp"):
    pid = tmp.name.rsplit(".jaxphys-", 1)[1].split("-", 1)[0]
    if pid.isdigit() and not pid_alive(int(pid)):
      tmp.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
  """Whether a process with id ``pid`` exists (on this machine)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


def fsync_dir(folder: Path) -> None:
  """Flushes ``folder``'s entries (new names, renames) to the disk."""
  fd = os.open(folder, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


@contextlib.contextmanager
def atomic_open(path) -> Iterator:
  """A binary file to write ``path`` through: a temporary file beside it, given the
  umask's mode, synced and renamed into place when the block succeeds and removed if it
  raises (``path`` is never half-written; a killed write leaves a ``.jaxphys-<pid>``
  temporary that :func:`remove_stale_temporaries` recognises).

  Raises:
    OutputError: the folder or file cannot be written; one line naming ``path``.
  """
  path = Path(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.jaxphys-{os.getpid()}-",
                               suffix=".tmp")
  except OSError as e:
    raise output_error(path, e) from None
  try:
    os.fchmod(fd, file_mode())  # mkstemp creates 0600
    with os.fdopen(fd, "wb") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)  # the rename itself survives a power cut
  except OSError as e:
    Path(tmp).unlink(missing_ok=True)
    if isinstance(e, OutputError) or not _ours(e, tmp):
      raise
    raise output_error(path, e) from None
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def atomic_write_bytes(path, payload: bytes) -> None:
  """Writes ``payload`` to ``path`` atomically (see :func:`atomic_open`).

  >>> import tempfile, pathlib
  >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
  >>> atomic_write_bytes(p, b"hi"); p.read_bytes()
  b'hi'
  """
  with atomic_open(path) as f:
    f.write(payload)


def _first_non_finite(obj: Any, where: str = "") -> Optional[str]:
  if isinstance(obj, float) and not math.isfinite(obj):
    return where or "the value"
  if isinstance(obj, dict):
    items = obj.items()
  elif isinstance(obj, (list, tuple)):
    items = enumerate(obj)
  else:
    return None
  for k, v in items:
    found = _first_non_finite(v, f"{where}[{k!r}]")
    if found:
      return found
  return None


def write_json(path, obj: Any) -> None:
  """Writes ``obj`` as indented JSON to ``path`` atomically.

  Raises:
    ValueError: ``obj`` holds NaN or an infinity (not JSON); the message names the key.
  """
  try:
    text = json.dumps(obj, indent=2, allow_nan=False)
  except ValueError:
    raise ValueError(f"{path}: {_first_non_finite(obj)} is not finite, which JSON cannot "
                     "hold (write None or a string instead)") from None
  atomic_write_bytes(Path(path), (text + "\n").encode())
