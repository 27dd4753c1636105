import os

# Deterministic, CPU-only test runs regardless of the machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
