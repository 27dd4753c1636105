"""Shared by tests/ and the docstring examples of jaxphys/ (`--doctest-modules`)."""

import os

# Deterministic, CPU-only runs regardless of the machine; figures without a display.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
