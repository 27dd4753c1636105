"""A compiled, multi-threaded parser for plain CSV files of decimal numbers (the SUSY file).

``parse_numeric_csv(path, ncols)`` memory-maps the file, cuts it into blocks and each
block at line ends into parts that Numba-compiled code parses side by side, and returns
the first column and the others as float32 arrays. It accepts exactly: ``ncols``
comma-separated numbers per line, each ``[+-] digits [. digits] [e|E [+-] digits]``,
lines ended by ``\n`` or ``\r\n``. The UCI file's own format, ``%.18e``
(``d.dddddddddddddddddde+dd``), takes a fast path that reads its digits eight at a time.
Anything else (a header, spaces, an empty line, ``nan``) returns None, and the caller
falls back to a general CSV reader, which also words the error message. Importing this
module fails (ImportError) where Numba is missing or bytes are not little-endian.

Each number keeps up to 19 significant digits and is rounded to float64, then to
float32: the same value as a correctly rounded float32 parse except when the decimal
lies within about 1e-16 (relative) of a point halfway between two float32 values, which
is then off by one float32 unit in the last place.
"""

from __future__ import annotations

import gc
import mmap
import os
import sys
from pathlib import Path
from typing import Optional

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

if sys.byteorder != "little":
  raise ImportError("jaxphys.data._csv reads eight digits as one little-endian word")

_U = numba.uint64
_POW10 = np.array([10.0 ** k for k in range(23)])  # exact in float64
_COMMA, _NEWLINE, _RETURN, _DOT, _MINUS, _PLUS, _E, _E_UPPER = map(ord, ",\n\r.-+eE")
_ZERO = ord("0")
_BLOCK = 1 << 26   # bytes parsed at a time
_SLACK = 1 << 20   # the longest last line without a line end


@intrinsic
def _load8(typingctx, buf, i):
  """``buf[i:i + 8]`` (uint8) as one little-endian uint64: an unaligned load."""
  def codegen(context, builder, sig, args):
    array = context.make_array(sig.args[0])(context, builder, args[0])
    pointer = builder.bitcast(builder.gep(array.data, [args[1]]), ir.IntType(64).as_pointer())
    return builder.load(pointer, align=1)
  return types.uint64(buf, i), codegen


@numba.njit(nogil=True, inline="always", cache=True)
def _eight_digits(w):
  """``(value, ok)`` of eight ASCII digits packed in ``w``, the first in the low byte."""
  ok = ((w & _U(0xF0F0F0F0F0F0F0F0))
        | (((w + _U(0x0606060606060606)) & _U(0xF0F0F0F0F0F0F0F0)) >> _U(4))) == _U(0x3333333333333333)
  w -= _U(0x3030303030303030)
  w = w * _U(10) + (w >> _U(8))  # pairs of digits
  w = (((w & _U(0x000000FF000000FF)) * _U(0x000F424000000064))  # 100, 1e6: to 8 digits
       + (((w >> _U(16)) & _U(0x000000FF000000FF)) * _U(0x0000271000000001))) >> _U(32)
  return w, ok


@numba.njit(nogil=True, inline="always", cache=True)
def _scale(m, k, pow10):
  """``m * 10**k`` rounded to float64 (exact powers of ten up to 1e22)."""
  v = float(m)
  if k >= 0:
    return v * (pow10[k] if k <= 22 else 10.0 ** k)
  return v / (pow10[-k] if k >= -22 else 10.0 ** (-k))


@numba.njit(nogil=True, cache=True)
def _parse_lines(buf, lo, hi, first, rest, pow10):
  """Parses the lines of ``buf[lo:hi]`` (``hi`` just after a newline) into ``first[row]``
  and ``rest[row, :]``. Returns ``(rows, -1)``, or ``(rows, offset)`` of the first byte
  it does not accept."""
  ncols = rest.shape[1] + 1
  i, row = lo, 0
  while i < hi:
    for col in range(ncols):
      neg = buf[i] == _MINUS
      if neg or buf[i] == _PLUS:
        i += 1
      c = buf[i]
      fast = False
      if (i + 24 < hi and buf[i + 1] == _DOT and buf[i + 20] == _E and _ZERO <= c <= _ZERO + 9
          and (buf[i + 21] == _PLUS or buf[i + 21] == _MINUS)
          and (buf[i + 24] == _COMMA or buf[i + 24] == _NEWLINE or buf[i + 24] == _RETURN)):
        # d.dddddddddddddddddde+dd: digits 1-8 and 9-16 at once, then 17, 18, the exponent.
        g1, ok1 = _eight_digits(_load8(buf, i + 2))
        g2, ok2 = _eight_digits(_load8(buf, i + 10))
        d17, d18 = np.int64(buf[i + 18]) - _ZERO, np.int64(buf[i + 19]) - _ZERO
        e1, e2 = np.int64(buf[i + 22]) - _ZERO, np.int64(buf[i + 23]) - _ZERO
        if ok1 and ok2 and 0 <= d17 <= 9 and 0 <= d18 <= 9 and 0 <= e1 <= 9 and 0 <= e2 <= 9:
          m = (_U(c - _ZERO) * _U(10 ** 18) + g1 * _U(10 ** 10) + g2 * _U(100)
               + _U(d17) * _U(10) + _U(d18))
          e = e1 * 10 + e2
          v = _scale(m, (-e if buf[i + 21] == _MINUS else e) - 18, pow10)
          i += 24
          fast = True
      if not fast:
        # Any other number: up to 19 significant digits, the rest only scale.
        m, significant, k, digits = _U(0), 0, 0, 0
        fraction = False
        while i < hi:
          c = buf[i]
          if c == _DOT and not fraction:
            fraction = True
          elif _ZERO <= c <= _ZERO + 9:
            digits += 1
            if significant < 19:
              m = m * _U(10) + _U(c - _ZERO)
              significant += m != 0
              k -= fraction
            else:
              k += not fraction
          else:
            break
          i += 1
        if digits == 0:
          return row, i
        if i < hi and (buf[i] == _E or buf[i] == _E_UPPER):
          i += 1
          eneg = buf[i] == _MINUS
          if eneg or buf[i] == _PLUS:
            i += 1
          e, edigits = 0, 0
          while i < hi and _ZERO <= buf[i] <= _ZERO + 9:
            e = min(e * 10 + (buf[i] - _ZERO), 100000)
            edigits += 1
            i += 1
          if edigits == 0:
            return row, i
          k += -e if eneg else e
        v = _scale(m, k, pow10)
      v = -v if neg else v
      if col == 0:
        first[row] = v
      else:
        rest[row, col - 1] = v
      if col < ncols - 1:
        if buf[i] != _COMMA:
          return row, i
        i += 1
      else:
        if buf[i] == _RETURN:
          i += 1
        if buf[i] != _NEWLINE:
          return row, i
        i += 1
    row += 1
  return row, -1


@numba.njit(parallel=True, nogil=True, cache=True)
def _parse_parts(buf, bounds, firsts, rests, pow10, rows, status):
  for t in numba.prange(len(bounds) - 1):
    rows[t], status[t] = _parse_lines(buf, bounds[t], bounds[t + 1], firsts[t], rests[t], pow10)


@numba.njit(parallel=True, nogil=True, cache=True)
def _gather(firsts, rests, rows, starts, first, rest):
  for t in numba.prange(len(rows)):
    first[starts[t]:starts[t] + rows[t]] = firsts[t, :rows[t]]
    rest[starts[t]:starts[t] + rows[t]] = rests[t, :rows[t]]


class _Output:
  """Rows appended block by block into arrays sized from the first block's line length."""

  def __init__(self, ncols: int, size: int, n_rows: Optional[int], parts: int):
    cap = (_BLOCK + _SLACK) // (2 * ncols) + 1  # a part's rows: every field takes 2+ bytes
    self.firsts = _empty((parts, cap))
    self.rests = _empty((parts, cap, ncols - 1))
    self.first = np.zeros(0, np.float32)
    self.rest = np.zeros((0, ncols - 1), np.float32)
    self.size, self.n_rows, self.done = size, n_rows, 0

  def parse(self, buf: np.ndarray, lo: int, hi: int) -> bool:
    """Parses the lines of ``buf[lo:hi]``; False if a byte is not accepted."""
    parts = len(self.firsts)
    bounds = [lo]
    for p in range(1, parts):
      bounds.append(_find_newline(buf, max(bounds[-1], lo + (hi - lo) * p // parts), hi))
    bounds = np.array(bounds + [hi], np.int64)
    rows, status = np.zeros(parts, np.int64), np.zeros(parts, np.int64)
    _parse_parts(buf, bounds, self.firsts, self.rests, _POW10, rows, status)
    if (status >= 0).any():
      return False
    total = int(rows.sum())
    if self.done + total > len(self.first):
      if not len(self.first):  # about the file's rows, from this block's bytes per row
        want = int(self.size / max(hi - lo, 1) * total * 1.02) + 1024
        want = want if self.n_rows is None else min(want, self.n_rows + total)
      else:
        want = int(len(self.first) * 1.5)
      want = max(want, self.done + total)
      self.first = _grow(self.first[:self.done], want)
      self.rest = _grow(self.rest[:self.done], want)
    starts = self.done + np.concatenate([[0], np.cumsum(rows)[:-1]])
    _gather(self.firsts, self.rests, rows, starts, self.first, self.rest)
    self.done += total
    return True

  def full(self) -> bool:
    return self.n_rows is not None and self.done >= self.n_rows

  def result(self):
    keep = self.done if self.n_rows is None else min(self.done, self.n_rows)
    return self.first[:keep], self.rest[:keep]


def _grow(array: np.ndarray, rows: int) -> np.ndarray:
  out = _empty((rows,) + array.shape[1:])
  out[:len(array)] = array
  return out


def _empty(shape) -> np.ndarray:
  """An uninitialised float32 array in an anonymous memory mapping. NumPy asks for
  transparent huge pages for large arrays; where the kernel then compacts memory on
  the first touch (``defrag=madvise``), filling 380 MB took 0.5-0.8 s instead of 0.13 s."""
  size = int(np.prod(shape)) * 4
  return np.frombuffer(mmap.mmap(-1, max(size, 1)), np.float32, int(np.prod(shape))).reshape(shape)


def parse_numeric_csv(path: Path, ncols: int, n_rows: Optional[int] = None,
                      parts: Optional[int] = None):
  """``(first (rows,), rest (rows, ncols - 1))`` float32 of a plain numeric CSV file, or
  None if the file is not in the accepted form (see the module docstring). With
  ``n_rows``, only the first ``n_rows`` lines are returned.

  The file is memory-mapped and parsed a block at a time, each block's lines in ``parts``
  (default: twice the threads) pieces side by side; each parsed block's pages are then
  released (``MADV_DONTNEED``), so the process maps about one block of the file at once.
  """
  size = os.path.getsize(path)
  out = _Output(ncols, size, n_rows, parts or 2 * numba.get_num_threads())
  if size == 0:
    return out.result()
  with open(path, "rb") as f:
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    _advise(mm, "MADV_SEQUENTIAL")
    buf = np.frombuffer(mm, np.uint8)
    try:
      ok = _parse_mapped(mm, buf, out)
    finally:
      del buf
      _close(mm)
  return out.result() if ok else None


def _close(mm: mmap.mmap) -> None:
  try:
    mm.close()
  except BufferError:  # Numba's first compilation leaves garbage frames that view the map
    gc.collect()
    try:
      mm.close()
    except BufferError:  # still viewed: unmapped when the last view is collected
      pass


def _parse_mapped(mm: mmap.mmap, buf: np.ndarray, out: _Output) -> bool:
  size, page = len(mm), mmap.PAGESIZE
  # Whole lines up to ``body``; a last line without a line end is parsed from a copy.
  body = size if mm[size - 1] == _NEWLINE else mm.rfind(b"\n") + 1
  start = 0
  while start < body and not out.full():
    stop = mm.rfind(b"\n", start, min(start + _BLOCK, body)) + 1
    if stop == 0 or not out.parse(buf, start, stop):  # a line longer than a block, or
      return False                                    # a byte that is not accepted
    if stop // page > start // page:  # done with these pages
      _advise(mm, "MADV_DONTNEED", start // page * page, (stop // page - start // page) * page)
    start = stop
  if body < size and not out.full():
    last = np.frombuffer(mm[body:] + b"\n", np.uint8)
    return size - body <= _SLACK and out.parse(last, 0, len(last))
  return True


def _advise(mm: mmap.mmap, flag: str, *where) -> None:
  if hasattr(mm, "madvise") and hasattr(mmap, flag):  # not on Windows
    mm.madvise(getattr(mmap, flag), *where)


@numba.njit(nogil=True, cache=True)
def _find_newline(buf, lo, hi):
  """The offset just after the first newline in ``buf[lo:hi]``, or ``hi``."""
  for i in range(lo, hi):
    if buf[i] == _NEWLINE:
      return i + 1
  return hi
