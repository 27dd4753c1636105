import os

# Deterministic, CPU-only test runs regardless of the machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: a long test (still run in CI); deselect with -m 'not slow'")
