"""the MNIST ladder: `python experiments/mnist.py --help`, the same as `jaxphys mnist --help`.

The experiment lives in :mod:`jaxphys.experiments.mnist`; this file only runs it from a clone.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a clone without pip install

from jaxphys.experiments.mnist import main  # noqa: E402

if __name__ == "__main__":
  sys.exit(main())
