"""Verified, atomic downloads into a cache directory."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from jaxphys.errors import DataError

__all__ = ["download", "sha256_of"]


def sha256_of(path) -> str:
  """Hex SHA-256 digest of the file at ``path``, read in 1 MiB blocks."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def download(urls: Sequence[str], dest, sha256: str, timeout: float = 30.0) -> Path:
  """Fetches the first of ``urls`` whose content has SHA-256 ``sha256`` to ``dest``.

  Each attempt streams into a temporary file beside ``dest``, hashing as it goes; only
  a complete file with the right hash is renamed onto ``dest``, so an interrupted,
  truncated or corrupted transfer never leaves a file that looks valid.

  Raises:
    DataError: every URL failed; the message lists each one's reason.
  """
  dest = Path(dest)
  dest.parent.mkdir(parents=True, exist_ok=True)
  failures = []
  for url in urls:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
      h = hashlib.sha256()
      with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
        size = resp.headers.get("Content-Length")
        received = 0
        for block in iter(lambda: resp.read(1 << 20), b""):
          h.update(block)
          out.write(block)
          received += len(block)
      if size is not None and received != int(size):
        failures.append(f"{url}: truncated ({received} of {size} bytes)")
      elif h.hexdigest() != sha256:
        failures.append(f"{url}: SHA-256 mismatch (got {h.hexdigest()[:12]}..., "
                        f"expected {sha256[:12]}...)")
      else:
        os.replace(tmp, dest)
        return dest
    except urllib.error.HTTPError as e:
      failures.append(f"{url}: HTTP {e.code} {e.reason}")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
      failures.append(f"{url}: {getattr(e, 'reason', None) or type(e).__name__}")
    finally:
      Path(tmp).unlink(missing_ok=True)
  raise DataError(f"{dest.name}: download failed: " + "; ".join(failures))
