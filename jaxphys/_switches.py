"""Private: the environment variables that switch a backend-specific detail on or off."""

from __future__ import annotations

import os


def on(name: str) -> bool:
  """Whether the switch ``name`` is on: unset or ``1`` is on, ``0`` is off.

  Raises:
    ValueError: any other value (one line).
  """
  value = os.environ.get(name, "1")
  if value not in ("0", "1"):
    raise ValueError(f"{name} must be 0 (off) or 1 (on), got {value!r}")
  return value == "1"
