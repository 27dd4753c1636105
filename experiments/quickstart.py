"""the course's first steps on scikit-learn's 8x8 digits: `python experiments/quickstart.py --help`, the same as `jaxphys quickstart --help`.

The experiment lives in :mod:`jaxphys.experiments.quickstart`; this file only runs it from a clone.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a clone without pip install

from jaxphys.experiments.quickstart import main  # noqa: E402

if __name__ == "__main__":
  sys.exit(main())
