"""Verified, atomic downloads into a cache directory."""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence, Union

from jaxphys._io import file_mode, output_error
from jaxphys.errors import DataError

PathLike = Union[str, os.PathLike]

# Errors of writing the file, never of the network: no other mirror can help.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)

__all__ = ["download", "sha256_of"]


def sha256_of(path: PathLike) -> str:
  """Hex SHA-256 digest of the file at ``path``, read in 1 MiB blocks.

  >>> import tempfile, pathlib
  >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
  >>> _ = path.write_bytes(b"abc")
  >>> sha256_of(path)[:16]
  'ba7816bf8f01cfea'
  """
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def download(urls: Sequence[str], dest: PathLike, sha256: str, timeout: float = 30.0,
             deadline: float = 600.0) -> Path:
  """Fetches the first of ``urls`` whose content has SHA-256 ``sha256`` to ``dest``.

  Each attempt streams into a temporary file beside ``dest``, hashing as it goes; only
  a complete file with the right hash is renamed onto ``dest``, so an interrupted,
  truncated or corrupted transfer never leaves a file that looks valid.

  Args:
    urls: mirrors, tried in order.
    dest: the file to write (its folder is created).
    sha256: the expected hex digest.
    timeout: seconds one network operation (connecting, one read) may wait.
    deadline: seconds the whole call may take, all mirrors together (a server that
      sends a byte now and then never trips ``timeout``, but trips this).

  Returns:
    ``dest``.

  Raises:
    DataError: every URL failed, or the deadline passed; the message lists each URL's
      reason.
    OutputError: ``dest`` cannot be written (no such folder, a full disk, ...).

  >>> import tempfile, pathlib
  >>> folder = pathlib.Path(tempfile.mkdtemp())
  >>> _ = (folder / "mirror.bin").write_bytes(b"abc")
  >>> url = (folder / "mirror.bin").as_uri()
  >>> download([url], folder / "copy.bin", sha256_of(folder / "mirror.bin")).read_bytes()
  b'abc'
  """
  for name, value in (("timeout", timeout), ("deadline", deadline)):
    if not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
      raise ValueError(f"download: {name} must be a positive, finite number of seconds, got {value!r}")
  dest = Path(dest)
  try:
    dest.parent.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise output_error(dest, e) from None
  end = time.monotonic() + deadline
  failures = []
  for url in urls:
    left = end - time.monotonic()
    if left <= 0:
      failures.append(f"{url}: not tried (the {deadline:g} s deadline had passed)")
      continue
    try:
      fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
      raise output_error(dest, e) from None
    try:
      with os.fdopen(fd, "wb") as out:
        failure = _fetch(url, out, sha256, min(timeout, left), end, deadline)
      if failure:
        failures.append(f"{url}: {failure}")
      else:
        os.chmod(tmp, file_mode())
        os.replace(tmp, dest)
        return dest
    except urllib.error.HTTPError as e:
      failures.append(f"{url}: HTTP {e.code} {e.reason}")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
      if getattr(e, "errno", None) in _DISK_ERRORS:
        raise output_error(dest, e) from None
      reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or type(e).__name__
      failures.append(f"{url}: {reason}")
    finally:
      Path(tmp).unlink(missing_ok=True)
  raise DataError(f"{dest.name}: download failed: " + "; ".join(failures))


def _fetch(url: str, out, sha256: str, timeout: float, end: float, deadline: float) -> str:
  """Streams ``url`` into ``out``; "" if complete with the right digest, else why not."""
  h = hashlib.sha256()
  received = 0
  resp = _open_within(url, timeout, end - time.monotonic())
  if resp is None:
    return f"no response within the {deadline:g} s deadline"
  with resp:
    size = resp.headers.get("Content-Length")
    while True:
      if time.monotonic() > end:
        return f"not complete within the {deadline:g} s deadline ({received} bytes received)"
      block = resp.read1(1 << 16)  # returns what one read gives: the deadline is checked often
      if not block:
        break
      h.update(block)
      out.write(block)
      received += len(block)
  if size is not None and received != int(size):
    return f"truncated ({received} of {size} bytes)"
  if h.hexdigest() != sha256:
    return f"SHA-256 mismatch (got {h.hexdigest()[:12]}..., expected {sha256[:12]}...)"
  return ""


def _open_within(url: str, timeout: float, seconds: float):
  """``urlopen(url)``, or None if it has not returned within ``seconds``: a server that
  sends its status line and headers a byte at a time never trips ``timeout`` (each read
  gets one byte), so the opening runs in a thread that is abandoned at the deadline."""
  box: dict = {}

  def target():
    try:
      box["response"] = urllib.request.urlopen(url, timeout=timeout)
    except BaseException as e:  # handed to the caller below
      box["error"] = e

  opener = threading.Thread(target=target, daemon=True)
  opener.start()
  opener.join(max(seconds, 0.0))
  if opener.is_alive():
    return None
  if "error" in box:
    raise box["error"]
  return box["response"]
