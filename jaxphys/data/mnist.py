"""MNIST, Fashion-MNIST and KMNIST: 28x28 grey-scale images in 10 classes.

:func:`load_mnist` returns :class:`ImageDataset` with ``uint8`` images of shape
``(n, 28, 28, 1)`` (0 = background, 255 = full ink) and ``int32`` labels in
``[0, 10)``; :func:`to_float` scales images to float32 in ``[0, 1]``.

Sources, tried in this order:

1. ``data_dir`` (argument), which must hold the four IDX files, directly or in a
   sub-directory named after the data set; else the directory in the environment
   variable ``JAXPHYS_DATA``, if it holds them;
2. the cache, ``cache_dir`` or ``$JAXPHYS_CACHE`` or ``~/.cache/jaxphys``, under the data
   set's name;
3. a download from the public mirrors, checked against SHA-256 and written
   atomically into the cache (``download=False`` skips it);
4. TensorFlow Datasets, if installed (``use_tfds=False`` skips it).

Files may be gzip'd (``train-images-idx3-ubyte.gz``) or raw (``train-images-idx3-ubyte``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from jaxphys.data.download import download as _download
from jaxphys.data.idx import read_idx
from jaxphys.errors import DataError

__all__ = ["ImageDataset", "DatasetSpec", "DATASETS", "load_mnist", "load_idx_dataset",
           "to_float"]

_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
          "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Where an IDX image data set lives: file stems, mirrors and SHA-256 of the ``.gz`` files."""

  name: str
  mirrors: tuple[str, ...]
  sha256: dict  # file stem -> SHA-256 of "<stem>.gz"
  class_names: tuple[str, ...]
  files: dict = dataclasses.field(default_factory=lambda: dict(_FILES))


DATASETS = {
    "mnist": DatasetSpec(
        "mnist",
        ("https://storage.googleapis.com/cvdf-datasets/mnist/",
         "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        {"train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
         "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
         "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
         "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
        tuple(str(d) for d in range(10))),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {"train-images-idx3-ubyte": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
         "train-labels-idx1-ubyte": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
         "t10k-images-idx3-ubyte": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
         "t10k-labels-idx1-ubyte": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"},
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot")),
    "kmnist": DatasetSpec(
        "kmnist",
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        {"train-images-idx3-ubyte": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
         "train-labels-idx1-ubyte": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
         "t10k-images-idx3-ubyte": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
         "t10k-labels-idx1-ubyte": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"},
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """A train/test image classification data set.

  Attributes:
    name: data set name.
    x_train: ``(n_train, 28, 28, 1)`` uint8. y_train: ``(n_train,)`` int32.
    x_test: ``(n_test, 28, 28, 1)`` uint8. y_test: ``(n_test,)`` int32.
    class_names: one name per class.
    source: where it came from (a directory, ``"tfds"``).
  """

  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  class_names: tuple[str, ...]
  source: str


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 images -> float32 in ``[0, 1]`` (same shape).

  >>> import numpy as np
  >>> from jaxphys.data import to_float
  >>> to_float(np.array([0, 51, 255], np.uint8))
  array([0. , 0.2, 1. ], dtype=float32)
  """
  return np.asarray(images, np.float32) / 255.0


def _find(directory: Path, stem: str) -> Optional[Path]:
  for name in (stem + ".gz", stem):
    if (directory / name).is_file():
      return directory / name
  return None


def _complete_dir(directory: Path, spec: DatasetSpec) -> Optional[Path]:
  """``directory`` or ``directory/<name>`` if it holds all four files, else None."""
  for d in (directory, directory / spec.name):
    if all(_find(d, stem) for stem in spec.files.values()):
      return d
  return None


def _read_split(directory: Path, spec: DatasetSpec, split: str):
  images_path = _find(directory, spec.files[f"x_{split}"])
  labels_path = _find(directory, spec.files[f"y_{split}"])
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise DataError(f"{images_path}: expected uint8 images (n, rows, cols), "
                    f"got {images.dtype} {images.shape}")
  if labels.ndim != 1 or labels.dtype != np.uint8:
    raise DataError(f"{labels_path}: expected uint8 labels (n,), got {labels.dtype} {labels.shape}")
  if len(images) != len(labels):
    raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
  if labels.size and labels.max() >= len(spec.class_names):
    raise DataError(f"{labels_path}: label {labels.max()} outside [0, {len(spec.class_names)})")
  return images[..., None], labels.astype(np.int32)


def _from_dir(directory: Path, spec: DatasetSpec, source: str) -> ImageDataset:
  x_train, y_train = _read_split(directory, spec, "train")
  x_test, y_test = _read_split(directory, spec, "test")
  if x_train.shape[1:] != x_test.shape[1:]:
    raise DataError(f"{directory}: train images {x_train.shape[1:]} and test images "
                    f"{x_test.shape[1:]} differ in shape")
  return ImageDataset(spec.name, x_train, y_train, x_test, y_test, spec.class_names, source)


def _cache_root(cache_dir) -> Path:
  if cache_dir is not None:
    return Path(cache_dir)
  env = os.environ.get("JAXPHYS_CACHE")
  return Path(env) if env else Path.home() / ".cache" / "jaxphys"


def _from_tfds(spec: DatasetSpec) -> ImageDataset:
  import tensorflow_datasets as tfds  # optional; data_source needs no TensorFlow

  def split(name):
    source = tfds.data_source(spec.name, split=name, download=False)
    examples = [source[i] for i in range(len(source))]
    x = np.stack([np.asarray(e["image"], np.uint8).reshape(28, 28, 1) for e in examples])
    return x, np.asarray([e["label"] for e in examples], np.int32)

  (x_train, y_train), (x_test, y_test) = split("train"), split("test")
  return ImageDataset(spec.name, x_train, y_train, x_test, y_test, spec.class_names, "tfds")


def load_idx_dataset(spec: DatasetSpec, data_dir: Union[str, os.PathLike, None] = None, *,
                     cache_dir: Union[str, os.PathLike, None] = None, download: bool = True,
                     use_tfds: bool = True, timeout: float = 30.0) -> ImageDataset:
  """Loads the IDX data set described by ``spec``; see the module docstring for sources.

  Args:
    spec: file names, mirrors and checksums, e.g. ``DATASETS["mnist"]``.
    data_dir: a directory holding the four files (directly or in ``<spec.name>/``).
    cache_dir: where downloads go (default ``$JAXPHYS_CACHE`` or ``~/.cache/jaxphys``).
    download: allow downloading from ``spec.mirrors``.
    use_tfds: allow TensorFlow Datasets as the last source.
    timeout: seconds per download attempt.

  Raises:
    jaxphys.errors.DataError: no source has the data set, or a file is malformed; one
      line naming the file or the sources tried.

  >>> import tempfile
  >>> from jaxphys.data import DATASETS, load_idx_dataset
  >>> load_idx_dataset(DATASETS["mnist"], tempfile.mkdtemp())
  Traceback (most recent call last):
  ...
  jaxphys.errors.DataError: ...: no mnist IDX files here or in mnist/ (missing: ...)
  """
  if data_dir is not None:
    d = _complete_dir(Path(data_dir), spec)
    if d is None:
      missing = [s for s in spec.files.values() if not _find(Path(data_dir), s)]
      raise DataError(f"{data_dir}: no {spec.name} IDX files here or in {spec.name}/ "
                      f"(missing: {', '.join(m + '[.gz]' for m in missing)})")
    return _from_dir(d, spec, str(d))
  env = os.environ.get("JAXPHYS_DATA")
  if env and (d := _complete_dir(Path(env), spec)) is not None:
    return _from_dir(d, spec, str(d))
  cache = _cache_root(cache_dir) / spec.name
  if (d := _complete_dir(cache, spec)) is not None:
    return _from_dir(d, spec, str(d))
  reasons = []
  if download:
    try:
      for stem in spec.files.values():
        if _find(cache, stem) is None:
          urls = [m + stem + ".gz" for m in spec.mirrors]
          _download(urls, cache / (stem + ".gz"), spec.sha256[stem], timeout=timeout)
      return _from_dir(cache, spec, str(cache))
    except DataError as e:
      reasons.append(str(e))
  if use_tfds:
    try:
      return _from_tfds(spec)
    except ImportError:
      reasons.append("tensorflow-datasets is not installed")
    except Exception as e:  # tfds raises many types when the data is not prepared
      reasons.append(f"tfds: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
  raise DataError(
      f"{spec.name} not found: pass data_dir=DIR (or set JAXPHYS_DATA) to a directory with "
      f"{', '.join(s + '.gz' for s in spec.files.values())}; or put them in {cache}; "
      f"or allow the download; or prepare it in TensorFlow Datasets "
      f"({'; '.join(reasons) if reasons else 'download disabled'})")


def load_mnist(name: str = "mnist", data_dir: Union[str, os.PathLike, None] = None,
               **kwargs) -> ImageDataset:
  """Loads ``"mnist"``, ``"fashion_mnist"`` or ``"kmnist"``; keyword arguments as
  :func:`load_idx_dataset`. Images ``(n, 28, 28, 1)`` uint8, labels ``(n,)`` int32.

  >>> import tempfile
  >>> import numpy as np
  >>> from jaxphys.data import load_mnist, write_idx
  >>> folder = tempfile.mkdtemp()
  >>> for split, n in (("train", 6), ("t10k", 4)):
  ...   write_idx(f"{folder}/{split}-images-idx3-ubyte.gz", np.zeros((n, 28, 28), np.uint8))
  ...   write_idx(f"{folder}/{split}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8))
  >>> ds = load_mnist("mnist", folder)
  >>> ds.x_train.shape, ds.y_test.tolist(), ds.class_names[:3]
  ((6, 28, 28, 1), [0, 1, 2, 3], ('0', '1', '2'))
  """
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
  return load_idx_dataset(DATASETS[name], data_dir, **kwargs)
