"""Data sets: IDX files (MNIST family), loaders with download and caching; the UCI SUSY file."""

from jaxphys.data.download import download, sha256_of
from jaxphys.data.idx import read_idx, write_idx
from jaxphys.data.mnist import (DATASETS, DatasetSpec, ImageDataset, load_idx_dataset, load_mnist,
                                to_float)
from jaxphys.data.susy import (FEATURE_SETS, SUSY_COLUMNS, load_susy, split_rows, susy_columns,
                               write_susy)

__all__ = ["read_idx", "write_idx", "download", "sha256_of", "DATASETS", "DatasetSpec",
           "ImageDataset", "load_idx_dataset", "load_mnist", "to_float", "SUSY_COLUMNS",
           "FEATURE_SETS", "susy_columns", "load_susy", "split_rows", "write_susy"]
