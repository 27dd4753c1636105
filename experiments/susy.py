"""the SUSY search: `python experiments/susy.py --help`, the same as `jaxphys susy --help`.

The experiment lives in :mod:`jaxphys.experiments.susy`; this file only runs it from a clone.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a clone without pip install

from jaxphys.experiments.susy import main  # noqa: E402

if __name__ == "__main__":
  sys.exit(main())
