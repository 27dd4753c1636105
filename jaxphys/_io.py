"""File helpers shared by the data, checkpoint and plotting modules."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_open(path: Path):
  """A binary file to write ``path`` through: a temporary file beside it, renamed into
  place when the block succeeds and removed if it raises (``path`` is never half-written)."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def atomic_write_bytes(path: Path, payload: bytes) -> None:
  """Writes ``payload`` to ``path`` atomically (see :func:`atomic_open`)."""
  with atomic_open(path) as f:
    f.write(payload)


def write_json(path: Path, obj) -> None:
  """Writes ``obj`` as indented JSON to ``path`` atomically."""
  atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())
