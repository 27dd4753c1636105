"""The command-line contract of the experiments: bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from jaxphys.errors import JaxphysError

# What a user's input can cause; anything else is a bug and keeps its traceback.
USER_ERRORS = (JaxphysError, ValueError, OSError)


def run(main: Callable, argv: Optional[Sequence[str]] = None) -> int:
  """Calls ``main(argv)``; a user error prints ``error: <first line>`` and returns 2
  (with ``--debug`` in ``argv`` it is re-raised with its traceback); success returns 0."""
  args = list(sys.argv[1:] if argv is None else argv)
  try:
    main(args)
  except USER_ERRORS as e:
    if "--debug" in args:
      raise
    message = str(e).strip().splitlines()
    print(f"error: {message[0] if message else type(e).__name__}", file=sys.stderr)
    return 2
  return 0
