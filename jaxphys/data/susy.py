"""The UCI SUSY data set (Baldi, Sadowski & Whiteson 2014): reader and writer.

``SUSY.csv`` or ``SUSY.csv.gz``: no header, 19 comma-separated numbers per line, the
label first (1 signal: chargino pairs; 0 background: W+W-), then the 18 features of
:data:`SUSY_COLUMNS`: 8 low-level (the two leptons' pT, eta, phi and the missing
transverse momentum) and 10 high-level (functions of the low-level ones). The file is
parsed by pyarrow's multi-threaded CSV reader; with ``cache_dir`` the parsed table is
kept as ``.npy``, so a file is parsed once. Speed and memory: ``benchmarks/susy_loader.py``
and BENCHMARKS.md.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import warnings
import zlib
from pathlib import Path
from typing import Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from jaxphys._io import atomic_open, write_json
from jaxphys.data.download import sha256_of
from jaxphys.errors import DataError, OutputError

PathLike = Union[str, os.PathLike]

__all__ = ["SUSY_COLUMNS", "FEATURE_SETS", "susy_columns", "load_susy", "split_rows", "write_susy"]

SUSY_COLUMNS = (
    "lepton_1_pT", "lepton_1_eta", "lepton_1_phi", "lepton_2_pT", "lepton_2_eta",
    "lepton_2_phi", "missing_energy_magnitude", "missing_energy_phi",
    "MET_rel", "axial_MET", "M_R", "M_TR_2", "R", "MT2", "S_R", "M_Delta_R", "dPhi_r_b",
    "cos_theta_r1",
)
FEATURE_SETS = {"low": slice(0, 8), "high": slice(8, 18), "all": slice(0, 18)}
# The official split of the 5,000,000 rows is 4,000,000 / 500,000 / 500,000: the same
# fractions are applied to a file of any length.
SPLITS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}
_NCOLS = 19


def susy_columns(features: str = "all") -> tuple[str, ...]:
  """Names of the columns of ``features`` (``"low"``: 8, ``"high"``: 10, ``"all"``: 18).

  >>> susy_columns("low")[:3]
  ('lepton_1_pT', 'lepton_1_eta', 'lepton_1_phi')
  """
  if features not in FEATURE_SETS:
    raise DataError(f"features must be one of {', '.join(FEATURE_SETS)}, got {features!r}")
  return SUSY_COLUMNS[FEATURE_SETS[features]]


def split_rows(n: int, split: str) -> slice:
  """Rows of ``split`` (``"train"``, ``"valid"``, ``"test"``) in a table of ``n`` rows:
  the official 80 / 10 / 10 % in file order (4,000,000 / 500,000 / 500,000 of the real file).

  >>> split_rows(5_000_000, "test")
  slice(4500000, 5000000, None)
  """
  if split not in SPLITS:
    raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
  lo, hi = SPLITS[split]
  return slice(int(round(lo * n)), int(round(hi * n)))


def _open_text(path: Path):
  # Bytes that are not UTF-8 become U+FFFD, which the scan below reports as not a number.
  if path.suffix == ".gz":
    return gzip.open(path, "rt", encoding="utf-8", errors="replace")
  return open(path, "rt", encoding="utf-8", errors="replace")


def _first_bad_line(path: Path, n_rows: Optional[int]) -> str:
  """Scans the text for the first malformed line (only on the error path); "" if the
  text looks fine or cannot be decompressed."""
  try:
    with _open_text(path) as f:
      for number, line in enumerate(f, start=1):
        if n_rows is not None and number > n_rows:
          break
        fields = line.rstrip("\r\n").split(",")
        if len(fields) != _NCOLS:
          return f"{path}:{number}: expected {_NCOLS} columns, found {len(fields)}"
        for column, field in enumerate(fields, start=1):
          try:
            float(field)
          except ValueError:
            return f"{path}:{number}: column {column} is not a number: {field.strip()[:30]!r}"
  except (OSError, EOFError, zlib.error):
    pass
  return ""


def _read(path: Path, n_rows: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
  """``(labels (rows,), features (rows, 18))`` float32; the first ``n_rows`` rows only if given."""
  table = _parse(path, n_rows)
  return table[:, 0], table[:, 1:]


def _parse(path: Path, n_rows: Optional[int]) -> np.ndarray:
  """All 19 columns as float32 ``(rows, 19)`` (column-major) with pyarrow; the first
  ``n_rows`` only if given."""
  import pyarrow as pa
  import pyarrow.csv as pacsv

  names = [f"c{i}" for i in range(_NCOLS)]
  read = pacsv.ReadOptions(column_names=names, use_threads=True, block_size=1 << 24)
  convert = pacsv.ConvertOptions(column_types={n: pa.float32() for n in names})
  try:
    if n_rows is None:
      table = pacsv.read_csv(path, read_options=read, convert_options=convert)
    else:  # stream and stop early
      batches, count = [], 0
      with pacsv.open_csv(path, read_options=read, convert_options=convert) as reader:
        for batch in reader:
          batches.append(batch)
          count += batch.num_rows
          if count >= n_rows:
            break
      table = pa.Table.from_batches(batches, schema=reader.schema).slice(0, n_rows)
  except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
    detail = _first_bad_line(path, n_rows)
    raise DataError(detail or f"{path}: not a SUSY CSV file ({str(e).splitlines()[0]})") from None
  except (OSError, EOFError) as e:
    raise DataError(f"{path}: cannot read ({str(e).splitlines()[0]})") from None
  # Column-major, so that filling a column touches only its own pages, while each Arrow
  # column is dropped and its memory returned once copied: the peak stays near one copy.
  out = np.empty((_NCOLS, table.num_rows), np.float32).T
  pool = pa.default_memory_pool()
  for i in range(_NCOLS):
    out[:, i] = table.column(0).to_numpy()
    table = table.remove_column(0)
    pool.release_unused()
  return out


def _source_digest(path: Path, cache_dir: Path) -> str:
  """SHA-256 of the file ``path``'s content. Remembered in ``cache_dir`` with the file's
  identity (size, modification and status-change times, inode, device): hashed again
  whenever any of these differ. The status-change time cannot be set back, so a file
  replaced by another of the same size and modification time is hashed again."""
  resolved = path.resolve()
  st = resolved.stat()
  identity = {"path": str(resolved), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
              "ctime_ns": st.st_ctime_ns, "inode": st.st_ino, "device": st.st_dev}
  index = cache_dir / f"{path.name}.{hashlib.sha256(str(resolved).encode()).hexdigest()[:12]}.source.json"
  try:
    known = json.loads(index.read_text())
    if known["identity"] == identity and len(known["sha256"]) == 64:
      return known["sha256"]
  except (OSError, ValueError, KeyError, TypeError):
    pass
  digest = sha256_of(resolved)
  try:
    write_json(index, {"identity": identity, "sha256": digest})
  except OutputError as e:  # a cache that cannot be written is only slower
    warnings.warn(f"{e}; the file will be hashed again next time", RuntimeWarning, stacklevel=3)
  return digest


def _load_cache(cached: Path):
  """``(labels, inputs)`` from the cache file ``cached`` if it holds a valid table; None
  (after a warning, and the file removed) if it is damaged or edited."""
  try:
    table = np.load(cached, allow_pickle=False, mmap_mode="r")
    if table.dtype != np.float32 or table.ndim != 2 or table.shape[1] != _NCOLS or not len(table):
      raise DataError(f"{cached}: holds {table.dtype} {table.shape}, not float32 (rows, {_NCOLS})")
    _validate(cached, table[:, 0], table[:, 1:])
  except (OSError, ValueError, EOFError) as e:  # DataError included; EOFError: an empty file
    problem = str(e) if isinstance(e, DataError) else f"{cached}: {(str(e).splitlines() or [''])[0]}"
    warnings.warn(f"damaged SUSY cache, read from the source again: {problem}", RuntimeWarning,
                  stacklevel=3)
    cached.unlink(missing_ok=True)
    return None
  return table[:, 0], table[:, 1:]


def _save_npy(path: Path, array: np.ndarray) -> None:
  with atomic_open(path) as f:
    np.save(f, array, allow_pickle=False)


def load_susy(path: PathLike, split: Optional[str] = None, features: str = "all",
              n_rows: Optional[int] = None, cache_dir: Optional[PathLike] = None) -> tuple[np.ndarray, np.ndarray]:
  """Reads the UCI SUSY file.

  Args:
    path: ``SUSY.csv`` or ``SUSY.csv.gz``.
    split: None (every row), ``"train"`` (first 80 %: rows 1-4,000,000 of the real
      file), ``"valid"`` (next 10 %) or ``"test"`` (last 10 %).
    features: ``"low"`` (8 columns), ``"high"`` (10) or ``"all"`` (18); see
      :func:`susy_columns` for their names.
    n_rows: read only the first ``n_rows`` rows of the file (before splitting).
    cache_dir: if given, the parsed file is kept there as ``.npy`` (no pickle), keyed by
      the SHA-256 of the file's content, and later loads read it instead; it is checked
      on every load (shape, dtype, labels in {0, 1}, finite values) and read from the
      source again, with a warning, if it is damaged.

  Returns:
    ``x`` float32 ``(n, k)`` and ``y`` int32 ``(n,)`` in {0, 1}.

  Raises:
    DataError: one line with the file and line number: a wrong column count, a
      non-numeric field, a label other than 0/1, a NaN or infinite value, an empty file.

  >>> import tempfile, pathlib
  >>> folder = pathlib.Path(tempfile.mkdtemp())
  >>> path = write_susy(folder / "SUSY.csv", np.ones((10, 18)), np.arange(10) % 2)
  >>> x, y = load_susy(path, split="test", cache_dir=folder / "cache")
  >>> x.shape, y.tolist()
  ((1, 18), [1])
  """
  path = Path(path)
  if split is not None and split not in SPLITS:
    raise DataError(f"split must be None or one of {', '.join(SPLITS)}, got {split!r}")
  columns = FEATURE_SETS.get(features)
  if columns is None:
    raise DataError(f"features must be one of {', '.join(FEATURE_SETS)}, got {features!r}")
  if n_rows is not None and int(n_rows) <= 0:
    raise DataError(f"n_rows must be a positive integer, got {n_rows!r}")
  if not path.is_file():
    raise DataError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
  cached = loaded = None
  if cache_dir is not None and n_rows is None:
    cached = Path(cache_dir) / f"{path.name}.{_source_digest(path, Path(cache_dir))[:16]}.npy"
    loaded = _load_cache(cached) if cached.is_file() else None
  if loaded is not None:
    labels, inputs = loaded
  else:
    labels, inputs = _read(path, n_rows)
    _validate(path, labels, inputs)
    if cached is not None:
      try:
        _save_npy(cached, np.column_stack([labels, inputs]))
      except OutputError as e:  # a cache that cannot be written is only slower
        warnings.warn(f"{e}; the SUSY file is not cached", RuntimeWarning, stacklevel=2)
  if len(labels) == 0:
    raise DataError(f"{path}: no rows")
  if split is not None:
    rows = split_rows(len(labels), split)
    labels, inputs = labels[rows], inputs[rows]
  # The whole parsed array is returned as it is; a part of it is copied, so that it does
  # not keep the whole alive.
  x = np.array(inputs[:, columns], np.float32, order="C", copy=True if split is not None else None)
  return x, labels.astype(np.int32)


def _validate(path: Path, labels: np.ndarray, inputs: np.ndarray) -> None:
  bad = np.nonzero((labels != 0) & (labels != 1))[0]
  if bad.size:
    raise DataError(f"{path}:{bad[0] + 1}: label {labels[bad[0]]:g} is not 0 or 1")
  if np.isfinite(np.sum(inputs, dtype=np.float64)):  # NaN and inf survive a float64 sum
    return
  finite = np.isfinite(inputs).all(axis=1)
  row = int(np.argmin(finite))
  column = int(np.argmin(np.isfinite(inputs[row])))
  raise DataError(f"{path}:{row + 1}: column {column + 2} is {inputs[row, column]}")


def write_susy(path: PathLike, x: ArrayLike, y: ArrayLike) -> Path:
  """Writes ``x`` ``(n, 18)`` and labels ``y`` ``(n,)`` in {0, 1} as a SUSY file.

  Same format as the UCI file (label first, 19 columns, scientific notation, no
  header), gzip'd if ``path`` ends in ``.gz``; written atomically. Returns ``path``.

  >>> import tempfile, pathlib
  >>> path = write_susy(pathlib.Path(tempfile.mkdtemp()) / "s.csv", np.zeros((1, 18)), [1])
  >>> path.read_text()[:30]
  '1.000000000000000000e+00,0.000'
  """
  path = Path(path)
  x = np.asarray(x, np.float64)
  y = np.asarray(y)
  if x.ndim != 2 or x.shape[1] != _NCOLS - 1:
    raise DataError(f"{path}: x must have shape (n, 18), got {x.shape}")
  if y.shape != (len(x),) or not np.isin(y, (0, 1)).all():
    raise DataError(f"{path}: y must be (n,) = ({len(x)},) labels in {{0, 1}}")
  with atomic_open(path) as raw:
    out = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) if path.suffix == ".gz" else raw
    for start in range(0, len(x), 100_000):  # bounded memory: 100,000 rows at a time
      buf = io.StringIO()
      rows = slice(start, start + 100_000)
      np.savetxt(buf, np.column_stack([y[rows].astype(np.float64), x[rows]]), fmt="%.18e",
                 delimiter=",")
      out.write(buf.getvalue().encode())
    if out is not raw:
      out.close()
  return path
