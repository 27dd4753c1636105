"""The compiled CSV parser behind ``load_susy`` against pyarrow's and Python's parse of
the same text: the UCI format, other number spellings, line ends, block and part
boundaries, and the inputs it leaves to the general reader."""

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxphys.data import _csv, load_susy, susy, write_susy

_parse = susy._parse


def _pyarrow(path):
  table = susy._parse(path, None)
  return table[:, 0], table[:, 1:]


def _assert_same(got, want):
  assert got is not None, "the compiled parser rejected the file"
  for a, b in zip(got, want):
    assert a.dtype == np.float32 and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.int32), np.ascontiguousarray(b).view(np.int32))


def test_uci_format_equals_pyarrow_bit_for_bit(tmp_path):
  rng = np.random.default_rng(0)
  # Magnitudes from 1e-30 to 1e30: exponents inside and outside the exact powers of ten.
  x = rng.normal(size=(3000, 18)) * 10.0 ** rng.integers(-30, 31, size=(3000, 18))
  path = write_susy(tmp_path / "s.csv", x, rng.integers(0, 2, 3000))
  assert "e-" in path.read_text()[:2000] and "-" in path.read_text()[:400]
  _assert_same(_csv.parse_numeric_csv(path, 19), _pyarrow(path))


def test_other_spellings_equal_python_float(tmp_path):
  fields = ["1", "0.5", "-3.25e-3", "+7E+2", "1.5e-40", "12345678901234567890123", ".5", "5.",
            "-0", "0.000000000000000000000000001234", "3.4028235e38", "007", "1e0", "9" * 30 + ".5",
            "0.1", "2.5E-05", "-1.000000000000000000e+00", "4.071449860930442810e-02", "1"]
  assert len(fields) == 19
  line = ",".join(fields)
  (tmp_path / "o.csv").write_text(line + "\n" + line + "\r\n" + line)  # LF, CRLF, none
  first, rest = _csv.parse_numeric_csv(tmp_path / "o.csv", 19)
  want = np.array([float(f) for f in fields]).astype(np.float32)
  assert first.shape == (3,) and rest.shape == (3, 18)
  for row in range(3):
    np.testing.assert_array_equal(np.r_[first[row], rest[row]].view(np.int32), want.view(np.int32))


@pytest.mark.parametrize("block", [97, 4096])
@pytest.mark.parametrize("parts", [1, 3, 8])
def test_block_and_part_boundaries(tmp_path, monkeypatch, block, parts):
  monkeypatch.setattr(_csv, "_BLOCK", block)  # many blocks, cut anywhere inside lines
  monkeypatch.setattr(_csv, "_SLACK", 1024)
  rng = np.random.default_rng(1)
  path = write_susy(tmp_path / "s.csv", rng.normal(size=(203, 18)), rng.integers(0, 2, 203))
  want = _pyarrow(path)
  if block < 500:  # a block shorter than a line: left to the general reader
    assert _csv.parse_numeric_csv(path, 19, parts=parts) is None
    return
  _assert_same(_csv.parse_numeric_csv(path, 19, parts=parts), want)
  first, rest = _csv.parse_numeric_csv(path, 19, n_rows=50, parts=parts)
  _assert_same((first, rest), (want[0][:50], want[1][:50]))


@pytest.mark.parametrize("text", [
    "label," + ",".join(["f"] * 18) + "\n",             # a header
    "0, " + ",".join(["0.5"] * 18) + "\n",             # a space
    "0," + ",".join(["0.5"] * 18) + "\n\n",            # an empty line
    "0," + ",".join(["nan"] * 18) + "\n",              # a word
    "0," + ",".join(["0.5"] * 17) + "\n",              # too few columns
    "0," + ",".join(["0.5"] * 19) + "\n",              # too many
    "0," + ",".join(["1e"] * 18) + "\n",               # an exponent without digits
    "0," + ",".join(["1.2.3"] * 18) + "\n",            # two points
    "0," + ",".join(["1.000000000000000000e+0x"] * 18) + "\n",  # the UCI format, damaged
])
def test_anything_else_is_left_to_the_general_reader(tmp_path, text):
  (tmp_path / "s.csv").write_text(text)
  assert _csv.parse_numeric_csv(tmp_path / "s.csv", 19) is None


def test_load_susy_falls_back_and_agrees(tmp_path):
  x = np.random.default_rng(2).normal(size=(20, 18)).astype(np.float32)
  path = write_susy(tmp_path / "s.csv", x, np.arange(20) % 2)
  text = path.read_text()
  (tmp_path / "blank.csv").write_text(text + "\n")  # pyarrow skips the empty line
  assert _csv.parse_numeric_csv(tmp_path / "blank.csv", 19) is None
  np.testing.assert_array_equal(load_susy(tmp_path / "blank.csv")[0], load_susy(path)[0])
  np.testing.assert_array_equal(load_susy(path)[0], x)
  (tmp_path / "empty.csv").write_text("")
  first, rest = _csv.parse_numeric_csv(tmp_path / "empty.csv", 19)
  assert first.shape == (0,) and rest.shape == (0, 18)


_number = st.floats(allow_nan=False, allow_infinity=False, width=32)
_spelling = st.sampled_from(["{:.18e}", "{!r}", "{:g}", "{:.3f}", "{:E}", "{:.30f}"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(_number, min_size=19, max_size=19), _spelling), min_size=1, max_size=5))
def test_random_tables_equal_python_float(tmp_path_factory, rows):
  path = tmp_path_factory.mktemp("csv") / "r.csv"
  lines = [",".join(spelling.format(float(v)) for v in values) for values, spelling in rows]
  path.write_text("\n".join(lines) + "\n")
  first, rest = _csv.parse_numeric_csv(path, 19)
  want = np.array([[float(f) for f in line.split(",")] for line in lines]).astype(np.float32)
  np.testing.assert_array_equal(np.c_[first, rest].view(np.int32), want.view(np.int32))


def test_without_numba_load_susy_uses_pyarrow(tmp_path, monkeypatch):
  x = np.random.default_rng(3).normal(size=(30, 18)).astype(np.float32)
  path = write_susy(tmp_path / "s.csv", x, np.arange(30) % 2)
  calls = []
  monkeypatch.setattr(susy, "_parse", lambda *a: calls.append(a) or _parse(*a))
  np.testing.assert_array_equal(load_susy(path)[0], x)
  assert not calls  # the compiled parser took it
  monkeypatch.setitem(sys.modules, "jaxphys.data._csv", None)  # import fails
  np.testing.assert_array_equal(load_susy(path)[0], x)
  assert len(calls) == 1


def test_a_split_does_not_keep_the_whole_file_alive(tmp_path):
  rng = np.random.default_rng(4)
  x = rng.normal(size=(100, 18)).astype(np.float32)
  path = write_susy(tmp_path / "s.csv", x, np.arange(100) % 2)
  test, _ = load_susy(path, split="test")
  assert test.flags.owndata and test.flags.c_contiguous
  np.testing.assert_array_equal(test, x[90:])
  whole, _ = load_susy(path)
  assert whole.flags.c_contiguous and whole.dtype == np.float32
  np.testing.assert_array_equal(whole, x)
