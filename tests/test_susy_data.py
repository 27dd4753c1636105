"""The UCI SUSY reader and writer on small files in the exact format."""

import gzip
import os

import numpy as np
import pytest

from jaxphys.data import SUSY_COLUMNS, load_susy, susy_columns, write_susy
from jaxphys.errors import DataError

# The first row of the real SUSY.csv (docs: SUSY_PHYSICS.md, section 1).
FIRST_ROW = ("0.000000000000000000e+00,9.728614687919616699e-01,6.538545489311218262e-01,"
             "1.176224589347839355e+00,1.157156467437744141e+00,-1.739873170852661133e+00,"
             "-8.743090629577636719e-01,5.677649974822998047e-01,-1.750000417232513428e-01,"
             "8.100607395172119141e-01,-2.525521218776702881e-01,1.921887040138244629e+00,"
             "8.896374106407165527e-01,4.107718467712402344e-01,1.145620989799499512e+00,"
             "1.932632088661193848e+00,9.944640994071960449e-01,1.367815494537353516e+00,"
             "4.071449860930442810e-02")


def _random_events(n=100, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, 18)).astype(np.float32), rng.integers(0, 2, n)


def test_parses_the_real_first_row(tmp_path):
  (tmp_path / "SUSY.csv").write_text(FIRST_ROW + "\n")
  x, y = load_susy(tmp_path / "SUSY.csv")
  assert x.shape == (1, 18) and x.dtype == np.float32 and y.dtype == np.int32
  expected = np.array(FIRST_ROW.split(","), np.float64)
  assert y[0] == 0
  np.testing.assert_array_equal(x[0], expected[1:].astype(np.float32))
  assert x[0, SUSY_COLUMNS.index("R")] == np.float32(0.4107718467712402)
  assert x[0, SUSY_COLUMNS.index("MT2")] == np.float32(1.145620989799499512)


@pytest.mark.parametrize("name", ["SUSY.csv", "SUSY.csv.gz"])
def test_write_then_read_round_trip(tmp_path, name):
  x, y = _random_events()
  write_susy(tmp_path / name, x, y)
  if name.endswith(".gz"):
    first = gzip.decompress((tmp_path / name).read_bytes()).decode().splitlines()[0]
  else:
    first = (tmp_path / name).read_text().splitlines()[0]
  assert len(first.split(",")) == 19 and ("e+" in first or "e-" in first)
  x2, y2 = load_susy(tmp_path / name)
  np.testing.assert_array_equal(x2, x)
  np.testing.assert_array_equal(y2, y)


def test_splits_feature_sets_and_n_rows(tmp_path):
  x, y = _random_events(200)
  write_susy(tmp_path / "s.csv", x, y)
  parts = [load_susy(tmp_path / "s.csv", split=s) for s in ("train", "valid", "test")]
  assert [len(p[0]) for p in parts] == [160, 20, 20]  # 4,000,000 / 500,000 / 500,000 of 5M
  np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
  np.testing.assert_array_equal(parts[2][1], y[180:])
  low, _ = load_susy(tmp_path / "s.csv", features="low")
  high, _ = load_susy(tmp_path / "s.csv", features="high")
  np.testing.assert_array_equal(low, x[:, :8])
  np.testing.assert_array_equal(high, x[:, 8:])
  assert susy_columns("low")[-1] == "missing_energy_phi" and len(susy_columns("high")) == 10
  head, yh = load_susy(tmp_path / "s.csv", n_rows=37)
  np.testing.assert_array_equal(head, x[:37])
  np.testing.assert_array_equal(yh, y[:37])


def test_cache_is_npy_and_loads_without_pickle(tmp_path):
  x, y = _random_events(50)
  write_susy(tmp_path / "s.csv.gz", x, y)
  cache = tmp_path / "cache"
  load_susy(tmp_path / "s.csv.gz", cache_dir=cache)
  (npy,) = cache.glob("*.npy")
  table = np.load(npy, allow_pickle=False)
  assert table.shape == (50, 19) and table.dtype == np.float32
  np.testing.assert_array_equal(load_susy(tmp_path / "s.csv.gz", cache_dir=cache, split="test")[0], x[45:])


@pytest.mark.parametrize("line,message", [
    ("1," + ",".join(["0.5"] * 17), r"s.csv:3: expected 19 columns, found 18"),
    ("1," + ",".join(["0.5"] * 17) + ",abc", r"s.csv:3: column 19 is not a number: 'abc'"),
    ("2," + ",".join(["0.5"] * 18), r"s.csv:3: label 2 is not 0 or 1"),
    ("1," + ",".join(["0.5"] * 17) + ",nan", r"s.csv:3: column 19 is nan"),
    ("0," + ",".join(["inf"] * 18), r"s.csv:3: column 2 is inf"),
])
def test_malformed_rows_name_the_line(tmp_path, line, message):
  good = "0," + ",".join(["0.25"] * 18)
  (tmp_path / "s.csv").write_text("\n".join([good, good, line, good]) + "\n")
  with pytest.raises(DataError, match=message) as err:
    load_susy(tmp_path / "s.csv")
  assert "\n" not in str(err.value)


def test_bad_arguments_and_files(tmp_path):
  (tmp_path / "empty.csv").write_text("")
  with pytest.raises(DataError, match="empty.csv"):
    load_susy(tmp_path / "empty.csv")
  with pytest.raises(DataError, match="not a regular file"):
    load_susy(tmp_path)
  with pytest.raises(DataError, match="no such file"):
    load_susy(tmp_path / "nope.csv")
  x, y = _random_events(10)
  write_susy(tmp_path / "s.csv", x, y)
  with pytest.raises(DataError, match="split must be"):
    load_susy(tmp_path / "s.csv", split="val")
  with pytest.raises(DataError, match="features must be one of low, high, all"):
    load_susy(tmp_path / "s.csv", features="mid")
  with pytest.raises(DataError, match="x must have shape"):
    write_susy(tmp_path / "w.csv", x[:, :8], y)
  with pytest.raises(DataError, match="labels in"):
    write_susy(tmp_path / "w.csv", x, y + 1)
  assert not (tmp_path / "w.csv").exists()
  (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b"0,1,2\n" * 100)[:-10])
  with pytest.raises(DataError, match="t.csv.gz"):
    load_susy(tmp_path / "t.csv.gz")


def _cached(tmp_path, n=40):
  x, y = _random_events(n)
  src = write_susy(tmp_path / "s.csv", x, y)
  cache = tmp_path / "cache"
  load_susy(src, cache_dir=cache)
  (npy,) = cache.glob("*.npy")
  return x, y, src, cache, npy


@pytest.mark.parametrize("damage,problem", [
    ("label", "label 7 is not 0 or 1"),
    ("nan", "column 5 is nan"),
    ("dtype", "holds float64"),
    ("shape", r"holds float32 \(40, 18\)"),
    ("truncated", "npy"),
    ("empty", "npy: No data left in file"),
])
def test_a_damaged_cache_is_detected_and_read_again(tmp_path, damage, problem):
  x, y, src, cache, npy = _cached(tmp_path)
  table = np.load(npy)
  if damage == "label":
    table[2, 0] = 7
  elif damage == "nan":
    table[3, 4] = np.nan
  elif damage == "dtype":
    table = table.astype(np.float64)
  elif damage == "shape":
    table = table[:, 1:]
  if damage == "truncated":
    npy.write_bytes(npy.read_bytes()[:100])
  elif damage == "empty":
    npy.write_bytes(b"")
  else:
    np.save(npy, table)
  with pytest.warns(RuntimeWarning, match=f"damaged SUSY cache.*{problem}"):
    x2, y2 = load_susy(src, cache_dir=cache)
  np.testing.assert_array_equal(x2, x)
  np.testing.assert_array_equal(y2, y)
  np.testing.assert_array_equal(np.load(npy)[:, 1:], x)  # written again, valid


def test_the_cache_follows_the_content_not_size_and_time(tmp_path, monkeypatch):
  x, y, src, cache, npy = _cached(tmp_path)
  stat = src.stat()
  text = bytearray(src.read_bytes())
  second = text.index(b",") + 1  # the first row's first feature: one digit changed
  text[second + 2] = ord("1") if text[second + 2] != ord("1") else ord("2")
  src.write_bytes(bytes(text))  # same size
  os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same modification time
  x_new = np.loadtxt(src, delimiter=",", dtype=np.float32)[:, 1:]
  assert not np.array_equal(x_new, x)
  assert src.stat().st_mtime_ns == stat.st_mtime_ns and src.stat().st_size == stat.st_size
  np.testing.assert_array_equal(load_susy(src, cache_dir=cache)[0], x_new)
  assert len(list(cache.glob("*.npy"))) == 2  # one per content
  # Unchanged, the file is not hashed again.
  from jaxphys.data import susy
  calls = []
  monkeypatch.setattr(susy, "sha256_of", lambda p: calls.append(p) or "0" * 64)
  np.testing.assert_array_equal(load_susy(src, cache_dir=cache)[0], x_new)
  assert calls == []


def test_number_spellings_equal_python_float(tmp_path):
  fields = ["1", "0.5", "-3.25e-3", "+7E+2", "1.5e-40", "12345678901234567890123", ".5", "5.",
            "-0", "0.000000000000000000000000001234", "3.4028235e38", "007", "1e0", "9" * 30 + ".5",
            "0.1", "2.5E-05", "-1.000000000000000000e+00", "4.071449860930442810e-02"]
  line = "1," + ",".join(fields)
  (tmp_path / "o.csv").write_text(line + "\n" + line + "\r\n" + line)  # LF, CRLF, none
  x, y = load_susy(tmp_path / "o.csv")
  want = np.array([float(f) for f in fields]).astype(np.float32)
  assert x.shape == (3, 18) and y.tolist() == [1, 1, 1]
  for row in x:
    np.testing.assert_array_equal(row.view(np.int32), want.view(np.int32))


def test_a_cache_that_cannot_be_written_is_a_warning(tmp_path, monkeypatch):
  x, y = _random_events(20)
  src = write_susy(tmp_path / "s.csv", x, y)

  def full(fd):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "fsync", full)
  with pytest.warns(RuntimeWarning) as caught:
    x2, _ = load_susy(src, cache_dir=tmp_path / "cache")
  messages = [str(w.message) for w in caught]
  assert messages[0].endswith(".source.json: cannot write (No space left on device); the file will be hashed again next time")
  assert messages[1].endswith(".npy: cannot write (No space left on device); the SUSY file is not cached")
  np.testing.assert_array_equal(x2, x)
  assert not list((tmp_path / "cache").glob("*.npy"))
