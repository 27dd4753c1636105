"""Data sets: IDX files (MNIST family), loaders with download and caching."""

from jaxphys.data.download import download, sha256_of
from jaxphys.data.idx import read_idx, write_idx
from jaxphys.data.mnist import (DATASETS, DatasetSpec, ImageDataset, load_idx_dataset, load_mnist,
                                to_float)

__all__ = ["read_idx", "write_idx", "download", "sha256_of", "DATASETS", "DatasetSpec",
           "ImageDataset", "load_idx_dataset", "load_mnist", "to_float"]
