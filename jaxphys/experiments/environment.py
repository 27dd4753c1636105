"""Where a result came from: the code's commit, the software versions, the compiler settings
that change the numbers, the device and the command line."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Optional

__all__ = ["environment", "git_commit", "compiler_settings"]

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "jaxphys")
# jax.config flags that change the numbers a program computes.
_JAX_FLAGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_threefry_partitionable",
              "jax_default_prng_impl", "jax_numpy_rank_promotion")


def git_commit(path: Optional[Path] = None) -> Optional[dict]:
  """``{"commit", "dirty"}`` of the git checkout holding ``path`` (default: this package),
  or ``None`` when it is not in one (an installed wheel) or git is missing.

  >>> record = git_commit()
  >>> record is None or len(record["commit"]) == 40
  True
  """
  where = Path(path or __file__).resolve().parent
  try:
    commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                            text=True, timeout=10)
    if commit.returncode != 0:
      return None
    status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=10)
  except (OSError, subprocess.SubprocessError):
    return None
  return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def compiler_settings() -> dict:
  """The XLA flags of this process (``XLA_FLAGS``, ``LIBTPU_INIT_ARGS``) and the
  ``jax.config`` values that change results.

  >>> sorted(compiler_settings())
  ['jax_config', 'xla_env']
  """
  import jax

  env = {k: os.environ[k] for k in ("XLA_FLAGS", "LIBTPU_INIT_ARGS", "JAX_PLATFORMS", "JAXPHYS_ONEDNN")
         if k in os.environ}
  flags = {}
  for name in _JAX_FLAGS:
    try:
      value = getattr(jax.config, name)
    except AttributeError:
      continue
    flags[name] = value if isinstance(value, (bool, int, float, type(None))) else str(value)
  return {"xla_env": env, "jax_config": flags}


def _version(name: str) -> Optional[str]:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return None


def environment(programs: Optional[dict] = None) -> dict:
  """The record of this run's origin, for ``results.json``: versions, commit, compiler
  settings, device, machine and command line. ``programs`` maps each trained model to
  how :func:`jaxphys.fit` compiled it (its history's ``"compilation"``: the loop and the
  XLA options chosen for that program), recorded under ``compiler["programs"]``.

  >>> record = environment({"cnn": {"train": {"backend": "cpu", "loop": "python", "xla_options": {}}}})
  >>> {"git", "compiler", "device", "command", "jax"} <= set(record), sorted(record["compiler"])
  (True, ['jax_config', 'programs', 'xla_env'])
  """
  import jax

  import jaxphys

  versions = {name: _version(name) for name in _PACKAGES}
  versions["jaxphys"] = versions["jaxphys"] or jaxphys.__version__
  return {"versions": versions, **versions, "python": platform.python_version(),
          "git": git_commit(), "compiler": {**compiler_settings(), "programs": programs or {}},
          "device": str(jax.devices()[0]), "backend": jax.default_backend(),
          "machine": platform.machine(), "cpu_count": os.cpu_count(),
          "command": shlex.join(sys.argv)}
