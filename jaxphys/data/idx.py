"""The IDX format of MNIST and its relatives: reader and writer, gzip or raw.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the array in C order, big-endian. A ``.gz`` file (or
any file starting with the gzip magic) is decompressed transparently.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Union

import numpy as np
from numpy.typing import ArrayLike

from jaxphys._io import atomic_write_bytes
from jaxphys.errors import DataError

PathLike = Union[str, os.PathLike]

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

# dtype code -> big-endian NumPy dtype
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
  if not path.exists():
    raise DataError(f"{path}: no such file")
  if not path.is_file():
    raise DataError(f"{path}: not a regular file")
  raw = path.read_bytes()
  if raw[:2] != _GZIP_MAGIC:
    return raw
  try:
    return gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None


def read_idx(path: PathLike) -> np.ndarray:
  """Reads an IDX file (raw or gzip) into a native-endian NumPy array.

  Checks the magic number, the dtype code, the dimensions and that the data length
  matches them exactly, and that the array is not empty; any violation raises
  :class:`~jaxphys.errors.DataError` naming the file.

  Returns:
    array of shape ``dims`` and the file's dtype (uint8 for MNIST).

  >>> import tempfile, pathlib
  >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.idx.gz"
  >>> write_idx(path, np.array([3, 1, 4], np.uint8))
  >>> read_idx(path)
  array([3, 1, 4], dtype=uint8)
  """
  path = Path(path)
  data = _read_bytes(path)
  if len(data) < 4:
    raise DataError(f"{path}: {len(data)} bytes is too short for an IDX header")
  if data[0] != 0 or data[1] != 0:
    raise DataError(f"{path}: bad IDX magic number 0x{data[:4].hex()} (must start with 0x0000)")
  code, ndim = data[2], data[3]
  if code not in IDX_DTYPES:
    raise DataError(f"{path}: unknown IDX dtype code 0x{code:02x}")
  if ndim == 0:
    raise DataError(f"{path}: IDX header declares 0 dimensions")
  header = 4 + 4 * ndim
  if len(data) < header:
    raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, need {header})")
  dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
  if 0 in dims:  # e.g. 0 images: nothing to train or test on
    raise DataError(f"{path}: IDX header declares an empty array (dimensions {dims})")
  dtype = IDX_DTYPES[code]
  expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
  found = len(data) - header
  if found != expected:
    what = "truncated" if found < expected else "has trailing bytes"
    raise DataError(f"{path}: {what}: dimensions {dims} need {expected} data bytes, found {found}")
  return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: PathLike, array: ArrayLike) -> None:
  """Writes ``array`` as IDX, gzip-compressed (mtime 0) if ``path`` ends in ``.gz``.

  The file appears atomically: a crash never leaves a partial file under ``path``.

  >>> import tempfile, pathlib
  >>> path = pathlib.Path(tempfile.mkdtemp()) / "images.idx"
  >>> write_idx(path, np.zeros((2, 28, 28), np.uint8))
  >>> read_idx(path).shape
  (2, 28, 28)
  """
  path = Path(path)
  array = np.asarray(array)
  codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
  dtype = array.dtype.newbyteorder("=")
  if dtype not in codes:
    raise DataError(f"{path}: cannot write dtype {array.dtype} as IDX "
                    f"(one of uint8, int8, int16, int32, float32, float64)")
  if array.ndim == 0 or array.ndim > 255:
    raise DataError(f"{path}: cannot write a {array.ndim}-dimensional array as IDX")
  code = codes[dtype]
  payload = (bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
             + np.ascontiguousarray(array, IDX_DTYPES[code]).tobytes())
  if path.suffix == ".gz":
    payload = gzip.compress(payload, mtime=0)
  atomic_write_bytes(path, payload)
