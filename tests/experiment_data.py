"""Tiny data sets shared by tests/test_experiments.py and tests/test_cli.py."""

import numpy as np

from jaxphys.data import write_idx, write_susy


def write_tiny_mnist(d, n_train=60, n_test=30):
  """``n_train`` / ``n_test`` 28x28 images: a bright block whose position encodes the class."""
  rng = np.random.default_rng(0)
  for split, n in (("train", n_train), ("t10k", n_test)):
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
      r, col = 4 + 2 * (c // 5) * 5, 2 + 5 * (c % 5)
      images[i, r:r + 6, col:col + 4] = 255
    write_idx(d / f"{split}-images-idx3-ubyte.gz", images)
    write_idx(d / f"{split}-labels-idx1-ubyte.gz", labels)
  return d


def write_susy_file(path, n=4000, seed=0, one_class_test=False):
  """A SUSY-format file whose label shifts the first feature; ``one_class_test``: the last
  10 % of the rows (the test split) are all background."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  if one_class_test:
    y[int(0.9 * n):] = 0
  x = rng.normal(size=(n, 18))
  x[:, 0] += 2.0 * y
  return write_susy(path, x, y)
