"""Private: the environment variables that switch a backend-specific detail on or off."""

from __future__ import annotations

import os


def on(name: str, default: bool = True) -> bool:
  """Whether the switch ``name`` is on: ``1`` is on, ``0`` is off, unset is ``default``.

  Raises:
    ValueError: any other value (one line).
  """
  value = os.environ.get(name, "1" if default else "0")
  if value not in ("0", "1"):
    raise ValueError(f"{name} must be 0 (off) or 1 (on), got {value!r}")
  return value == "1"
