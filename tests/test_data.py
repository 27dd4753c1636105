"""IDX reading/writing, the loaders' source order, and verified downloads against a
local HTTP server that serves good, corrupted and truncated files."""

import contextlib
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxphys.data import (DatasetSpec, download, load_idx_dataset, load_mnist, read_idx,
                          to_float, write_idx)
from jaxphys.errors import DataError

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def _tiny(seed=0, n_train=12, n_test=6):
  rng = np.random.default_rng(seed)
  return {STEMS[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
          STEMS[1]: (np.arange(n_train) % 10).astype(np.uint8),
          STEMS[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
          STEMS[3]: (np.arange(n_test) % 10).astype(np.uint8)}


def _write_set(directory: Path, arrays, gz=True):
  for stem, a in arrays.items():
    write_idx(directory / (stem + (".gz" if gz else "")), a)


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
  a = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
  write_idx(tmp_path / f"a{suffix}", a)
  b = read_idx(tmp_path / f"a{suffix}")
  assert b.dtype == a.dtype.newbyteorder("=") and b.shape == a.shape
  np.testing.assert_array_equal(a, b)


def test_idx_header_is_the_mnist_layout(tmp_path):
  write_idx(tmp_path / "x", np.zeros((3, 28, 28), np.uint8))
  raw = (tmp_path / "x").read_bytes()
  assert raw[:16] == bytes.fromhex("00000803" "00000003" "0000001c" "0000001c")  # 2051, 3, 28, 28
  assert len(raw) == 16 + 3 * 784


def _bad_idx_cases(tmp_path):
  good = bytes.fromhex("00000801" "00000004") + bytes(range(4))
  yield "short.idx", b"\x00\x00", "too short for an IDX header"
  yield "magic.idx", b"\x01" + good[1:], "bad IDX magic number"
  yield "dtype.idx", good[:2] + b"\x07" + good[3:], "unknown IDX dtype code 0x07"
  yield "zero.idx", b"\x00\x00\x08\x00", "declares 0 dimensions"
  yield "header.idx", b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"
  yield "trunc.idx", good[:-1], r"truncated: dimensions \(4,\) need 4 data bytes, found 3"
  yield "long.idx", good + b"\x00", "has trailing bytes"
  yield "trunc.gz", gzip.compress(good)[:-6], "corrupt or truncated gzip"
  corrupt = bytearray(gzip.compress(good * 50))
  corrupt[20] ^= 0xFF
  yield "corrupt.gz", bytes(corrupt), "corrupt or truncated gzip"


def test_malformed_idx_files_give_one_line_errors(tmp_path):
  for name, payload, message in _bad_idx_cases(tmp_path):
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(DataError, match=message) as err:
      read_idx(tmp_path / name)
    assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)
  with pytest.raises(DataError, match="no such file"):
    read_idx(tmp_path / "missing")
  with pytest.raises(DataError, match="not a regular file"):
    read_idx(tmp_path)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_data_error(tmp_path_factory, payload):
  path = tmp_path_factory.mktemp("fuzz") / "f.idx"
  path.write_bytes(payload)
  try:
    read_idx(path)
  except DataError:
    pass


def test_load_from_directory_and_env(tmp_path, monkeypatch):
  arrays = _tiny()
  _write_set(tmp_path / "mnist", arrays, gz=False)  # raw files in a sub-directory
  ds = load_mnist("mnist", tmp_path, download=False, use_tfds=False)
  assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_train.dtype == np.uint8
  assert ds.y_train.dtype == np.int32 and ds.x_test.shape == (6, 28, 28, 1)
  np.testing.assert_array_equal(ds.x_train[..., 0], arrays[STEMS[0]])
  np.testing.assert_array_equal(ds.y_test, arrays[STEMS[3]])
  assert to_float(ds.x_train).max() <= 1.0 and to_float(ds.x_train).dtype == np.float32
  monkeypatch.setenv("JAXPHYS_DATA", str(tmp_path))
  assert load_mnist("mnist", cache_dir=tmp_path / "none", download=False,
                    use_tfds=False).source == str(tmp_path / "mnist")


def test_inconsistent_files_are_errors(tmp_path):
  arrays = _tiny()
  arrays[STEMS[1]] = arrays[STEMS[1]][:-1]
  _write_set(tmp_path, arrays)
  with pytest.raises(DataError, match="11 labels for 12 images"):
    load_mnist("mnist", tmp_path)
  arrays = _tiny()
  arrays[STEMS[3]][0] = 10
  _write_set(tmp_path, arrays)
  with pytest.raises(DataError, match=r"label 10 outside \[0, 10\)"):
    load_mnist("mnist", tmp_path)
  arrays = _tiny()
  arrays[STEMS[0]] = arrays[STEMS[0]].reshape(12, 784)
  _write_set(tmp_path, arrays)
  with pytest.raises(DataError, match=r"expected uint8 images \(n, rows, cols\)"):
    load_mnist("mnist", tmp_path)


def test_missing_data_lists_every_way_to_provide_it(tmp_path, monkeypatch):
  monkeypatch.delenv("JAXPHYS_DATA", raising=False)
  with pytest.raises(DataError, match="no fashion_mnist IDX files here"):
    load_mnist("fashion_mnist", tmp_path)
  with pytest.raises(DataError) as err:
    load_mnist("fashion_mnist", cache_dir=tmp_path, download=False, use_tfds=False)
  msg = str(err.value)
  for part in ("data_dir=DIR", "JAXPHYS_DATA", str(tmp_path / "fashion_mnist"), "download",
               "TensorFlow Datasets"):
    assert part in msg
  with pytest.raises(DataError, match="unknown dataset 'cifar'"):
    load_mnist("cifar")


class _Server:
  """Serves ``files`` (path -> bytes) on 127.0.0.1; '/trunc/...' lies about its length."""

  def __init__(self, files):
    files = dict(files)

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_GET(self):
        body = files.get(self.path)
        if body is None:
          self.send_error(404)
          return
        self.send_response(200)
        declared = len(body) * 2 if self.path.startswith("/trunc/") else len(body)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(body)

      def log_message(self, *args):
        pass

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
    threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

  def close(self):
    self.httpd.shutdown()
    self.httpd.server_close()


@pytest.fixture
def tiny_server(tmp_path):
  src = tmp_path / "src"
  _write_set(src, _tiny(seed=1))
  blobs = {stem: (src / f"{stem}.gz").read_bytes() for stem in STEMS}
  files = {}
  for stem, blob in blobs.items():
    files[f"/good/{stem}.gz"] = blob
    files[f"/bad/{stem}.gz"] = blob[:-9] + bytes(9)  # same length, corrupted
    files[f"/trunc/{stem}.gz"] = blob[: len(blob) // 2]
  server = _Server(files)
  spec = DatasetSpec("tiny", (server.url + "/bad/", server.url + "/trunc/", server.url + "/good/"),
                     {s: hashlib.sha256(b).hexdigest() for s, b in blobs.items()},
                     tuple(str(i) for i in range(10)))
  yield server, spec, blobs
  server.close()


def test_download_skips_corrupted_and_truncated_mirrors(tmp_path, tiny_server, monkeypatch):
  monkeypatch.delenv("JAXPHYS_DATA", raising=False)
  server, spec, blobs = tiny_server
  cache = tmp_path / "cache"
  ds = load_idx_dataset(spec, cache_dir=cache, use_tfds=False, timeout=5)
  assert ds.source == str(cache / "tiny") and ds.x_train.shape == (12, 28, 28, 1)
  for stem, blob in blobs.items():
    assert (cache / "tiny" / f"{stem}.gz").read_bytes() == blob
  assert sorted(p.name for p in (cache / "tiny").iterdir()) == sorted(f"{s}.gz" for s in STEMS)
  # Second load: from the cache, with the server gone.
  server.close()
  assert load_idx_dataset(spec, cache_dir=cache, download=False, use_tfds=False).source == str(cache / "tiny")


def test_download_with_only_bad_mirrors_leaves_nothing(tmp_path, tiny_server):
  server, spec, blobs = tiny_server
  dest = tmp_path / "out" / "x.gz"
  with pytest.raises(DataError) as err:
    download([server.url + "/bad/" + STEMS[0] + ".gz", server.url + "/trunc/" + STEMS[0] + ".gz",
              server.url + "/missing.gz"], dest, spec.sha256[STEMS[0]], timeout=5)
  msg = str(err.value)
  assert "SHA-256 mismatch" in msg and "404" in msg and "\n" not in msg
  assert "truncated" in msg or "IncompleteRead" in msg
  assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_tensorflow_datasets_is_the_last_source(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.delenv("JAXPHYS_DATA", raising=False)
  with tfds.testing.mock_data(num_examples=7, policy=tfds.testing.MockPolicy.USE_CODE):
    ds = load_mnist("fashion_mnist", cache_dir=tmp_path, download=False)
  assert ds.source == "tfds" and ds.name == "fashion_mnist"
  assert ds.x_train.shape == (7, 28, 28, 1) and ds.x_train.dtype == np.uint8
  assert ds.y_test.dtype == np.int32 and ds.y_test.min() >= 0 and ds.y_test.max() < 10
  # A local directory takes precedence over tfds.
  _write_set(tmp_path / "fashion_mnist", _tiny())
  with tfds.testing.mock_data(num_examples=7, policy=tfds.testing.MockPolicy.USE_CODE):
    assert load_mnist("fashion_mnist", cache_dir=tmp_path, download=False).source != "tfds"


@contextlib.contextmanager
def _trickling_server(sent_at_once: bytes, trickled: bytes):
  """A server on 127.0.0.1 answering every GET with ``sent_at_once`` and then
  ``trickled`` one byte every 50 ms; yields its URL and stops trickling on exit."""
  stop = threading.Event()

  class Trickle(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
      self.wfile.write(sent_at_once)
      for byte in trickled:
        if stop.is_set():
          return
        self.wfile.write(bytes([byte]))
        self.wfile.flush()
        stop.wait(0.05)

    def log_message(self, *args):
      pass

  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
  threading.Thread(target=httpd.serve_forever, daemon=True).start()
  try:
    yield f"http://127.0.0.1:{httpd.server_address[1]}/slow"
  finally:
    stop.set()
    httpd.shutdown()
    httpd.server_close()


def test_a_trickling_server_trips_the_overall_deadline(tmp_path):
  # 10,000 bytes announced, one sent every 50 ms (over 8 minutes)
  head = b"HTTP/1.0 200 OK\r\nContent-Length: 10000\r\n\r\n"
  with _trickling_server(head, b"x" * 10000) as url:
    with pytest.raises(DataError) as err:
      download([url, url + "2"], tmp_path / "f.gz", "0" * 64, timeout=5, deadline=1.0)
  msg = str(err.value)
  assert f"{url}: not complete within the 1 s deadline (" in msg and "bytes received)" in msg
  assert f"{url}2: not tried (the 1 s deadline had passed)" in msg and "\n" not in msg
  assert list(tmp_path.iterdir()) == []
  with pytest.raises(ValueError, match="deadline must be a positive, finite number"):
    download([url], tmp_path / "f.gz", "0" * 64, deadline=float("inf"))


def test_a_server_trickling_its_headers_trips_the_overall_deadline(tmp_path):
  # the status line and headers, one byte every 50 ms (minutes in all)
  head = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"y" * 5000 + b"\r\n\r\n"
  with _trickling_server(b"", head) as url:
    with pytest.raises(DataError, match=r"no response within the 1 s deadline"):
      download([url], tmp_path / "f.gz", "0" * 64, timeout=5, deadline=1.0)
  assert list(tmp_path.iterdir()) == []


def test_empty_idx_files_are_one_line_errors(tmp_path):
  write_idx(tmp_path / "images.idx", np.zeros((0, 28, 28), np.uint8))
  with pytest.raises(DataError, match=r"images.idx: IDX header declares an empty array \(dimensions \(0, 28, 28\)\)"):
    read_idx(tmp_path / "images.idx")


def test_downloads_that_cannot_be_written_are_one_line_output_errors(tmp_path, monkeypatch):
  import importlib

  download_module = importlib.import_module("jaxphys.data.download")
  from jaxphys.data.download import sha256_of
  from jaxphys.errors import OutputError

  source = tmp_path / "mirror.bin"
  source.write_bytes(b"abc")
  url, digest = source.as_uri(), sha256_of(source)
  (tmp_path / "file").write_text("")
  with pytest.raises(OutputError, match=r"file/x.bin: cannot write \(") as err:  # the folder is a file
    download([url], tmp_path / "file" / "x.bin", digest)
  assert "\n" not in str(err.value)

  def full(*args):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(download_module, "_fetch", full)
  with pytest.raises(OutputError, match=r"x.bin: cannot write \(No space left on device\)"):
    download([url, url], tmp_path / "x.bin", digest)  # not "url: OSError" once per mirror
  assert list(tmp_path.glob(".x.bin*")) == []
