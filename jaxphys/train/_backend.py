"""How jaxphys compiles its training programs on each backend (private).

One place decides the XLA compiler options and the loop strategy of a program, from
the program itself (whether it convolves, how many FLOPs its matrix products take) and
the backend, and on CPU how the process keeps the memory XLA frees
(:func:`keep_freed_memory`). The choices and their measurements are in BENCHMARKS.md.
Nothing here is public: :func:`jaxphys.fit` and :func:`jaxphys.evaluate` call
:func:`plan` and :func:`jit`.
"""

from __future__ import annotations

import ctypes
import functools
import platform
from typing import Callable

import jax
import numpy as np

from jaxphys import _mixed_products, _onednn, _switches

# On CPU, XLA hands dots, convolutions and reductions to YNNPACK by default; its
# convolution gradients are slow, so convolutions go to XLA's Eigen kernels.
_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type":
                "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
# Programs that convolve: XLA's memory-minimising schedule as well.
_CPU_CONV_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
# Programs without convolutions whose matrix products are small: dots on XLA's own code.
_SMALL_DOT_FLOPS = 1e8
_CPU_SMALL_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
_GROUPS = {"all": _CPU_OPTIONS, "conv": _CPU_CONV_OPTIONS, "small": _CPU_SMALL_OPTIONS}


@functools.lru_cache(maxsize=None)
def _accepted(group: str) -> bool:
  """Whether the installed jaxlib knows the CPU option group (probed once per group)."""
  try:
    jax.jit(lambda v: v + 1).lower(np.float32(0)).compile(dict(_GROUPS[group]))
  except Exception:  # noqa: BLE001 (jax's runtime error class differs across versions)
    return False
  return True


def options(backend: str, *, convolutions: bool, dot_flops: float) -> dict:
  """XLA compiler options for a program on ``backend`` (``{}`` off CPU)."""
  if backend != "cpu":
    return {}
  groups = ["all", "conv"] if convolutions else ["all"] + (["small"] if dot_flops < _SMALL_DOT_FLOPS else [])
  out = {}
  for group in groups:  # a later group's value replaces an earlier one's
    if _accepted(group):
      out.update(_GROUPS[group])
  return out


def plan(jaxpr) -> tuple[str, dict]:
  """``(loop, options)`` for a program whose one batch is ``jaxpr``.

  ``loop`` is ``"python"`` (one compiled, asynchronously dispatched step per batch) for
  convolutional programs on CPU, whose gradients XLA runs far slower inside a compiled
  loop, and ``"scan"`` (the epoch as one compiled loop) otherwise.
  """
  backend = jax.default_backend()
  convolves = _uses_primitive(jaxpr, "conv_general_dilated", _onednn.conv_p.name)
  loop = "python" if convolves and backend == "cpu" else "scan"
  return loop, options(backend, convolutions=convolves, dot_flops=_dot_flops(jaxpr))


def jit(fn: Callable, opts: dict, **kwargs) -> Callable:
  """``jax.jit`` with XLA compiler ``opts`` (none passed when empty); on CPU, first
  :func:`keep_freed_memory`."""
  if jax.default_backend() == "cpu":
    keep_freed_memory()
  return jax.jit(fn, **kwargs, **({"compiler_options": opts} if opts else {}))


# glibc's mallopt parameters (malloc.h), the free memory the heap keeps, and the pad
# that keeps a thread's extra heap (at most 64 MiB on 64-bit glibc) once it is empty.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
_KEPT_BYTES, _TOP_PAD_BYTES = 1 << 30, 128 << 20


def _glibc() -> bool:
  """Whether this process runs on Linux with glibc (whose ``malloc`` the settings tune)."""
  return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _heaps(libc) -> int:
  """How many heaps (arenas) glibc's ``malloc`` has made in this process (``malloc_info``)."""
  text, size = ctypes.c_void_p(), ctypes.c_size_t()
  libc.open_memstream.restype = ctypes.c_void_p
  stream = ctypes.c_void_p(libc.open_memstream(ctypes.byref(text), ctypes.byref(size)))
  if not stream.value:  # no stream to write to: unknown
    return 0
  libc.malloc_info(0, stream)
  libc.fclose(stream)
  try:
    return ctypes.string_at(text.value, size.value).count(b"<heap nr=")
  finally:
    libc.free(text)


def share_one_heap() -> bool:
  """Has every thread that allocates for the first time from now on use glibc's main
  heap, where ``JAXPHYS_SHARED_HEAP=1`` was set before jaxphys was imported (off by
  default).

  XLA's CPU runtime allocates a compiled program's temporary buffer on one of its
  worker threads. A thread's own glibc heap grows to 64 MiB at most; a larger block
  (the course CNN's step at batch 256 needs 123 MiB) is mapped afresh at every run
  and unmapped when freed, so every step faults in and zeroes it again, whatever
  :func:`keep_freed_memory` sets. The main heap has no such limit, but every thread's
  ``malloc`` and ``free`` then take its one lock, which slows programs whose thread
  pool allocates often (the ResNet, the MLP): the setting pays only for programs with
  temporaries over 64 MiB, such as large-batch or vmapped CNNs (BENCHMARKS.md). glibc
  binds a thread to a heap at its first allocation, so this runs when jaxphys is
  imported, before XLA's threads exist. Where other threads allocated before (JAX ran
  first, a notebook kernel's threads), glibc hands new threads their heaps too, and
  this returns False: there ``MALLOC_ARENA_MAX=1`` in the environment gives one heap
  from the start. Process-wide, on Linux with glibc, not with ``JAXPHYS_KEEP_MEMORY=0``
  (a wrong value of either switch is reported by :func:`keep_freed_memory`). Returns
  whether this process now has one heap for all threads.
  """
  try:
    if not (_switches.on("JAXPHYS_SHARED_HEAP", default=False) and _switches.on("JAXPHYS_KEEP_MEMORY")
            and _glibc()):
      return False
    libc = ctypes.CDLL(None)  # the C library this process runs on
    return bool(libc.mallopt(_M_ARENA_MAX, 1)) and _heaps(libc) == 1
  except (ValueError, OSError, AttributeError):  # a wrong switch (reported by
    return False  # keep_freed_memory at the first compile), no such C library or function


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
  """Lets this process reuse the memory XLA frees, instead of asking the kernel again.

  XLA's CPU runtime allocates a compiled program's temporary buffer (tens of MB for the
  course CNN) with ``malloc`` at every run and frees it after. glibc serves blocks
  that large by ``mmap`` and returns them on ``free``, so every training step faults
  in, and zeroes, its whole working memory again (BENCHMARKS.md, "Memory reuse on
  CPU"). Here glibc's heaps serve every block and keep up to 1 GiB of freed memory
  for reuse; a top pad of 128 MiB also keeps the extra heaps of threads that have
  heaps of their own (64 MiB each; :func:`share_one_heap`), which glibc unmaps as soon
  as they are empty. Process-wide, once, on Linux with glibc; ``JAXPHYS_KEEP_MEMORY=0``
  leaves ``malloc`` as it is. Returns whether the setting was applied.

  Raises:
    ValueError: ``JAXPHYS_KEEP_MEMORY`` or ``JAXPHYS_SHARED_HEAP`` set to anything but
      ``0`` or ``1`` (one line).
  """
  _switches.on("JAXPHYS_SHARED_HEAP", default=False)  # (read at import, reported here)
  if not _switches.on("JAXPHYS_KEEP_MEMORY") or not _glibc():
    return False
  libc = ctypes.CDLL(None)  # the C library this process runs on
  return all(libc.mallopt(param, value) for param, value in (
      (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _KEPT_BYTES), (_M_TOP_PAD, _TOP_PAD_BYTES)))


# Before XLA's worker threads first allocate (see the docstring).
_ONE_HEAP = share_one_heap()


def _equations(jaxpr):
  """The equations of ``jaxpr`` and of the jaxprs nested in them."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        sub = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(sub, "eqns"):
          yield from _equations(sub)


def _uses_primitive(jaxpr, *names: str) -> bool:
  """Whether ``jaxpr`` (nested jaxprs included) holds a primitive named one of ``names``."""
  return any(eqn.primitive.name in names for eqn in _equations(jaxpr))


def _dot_flops(jaxpr) -> int:
  """FLOPs (2 per multiply-add) of the matrix products (``dot_general``) in ``jaxpr``."""
  return sum(_mixed_products.flops(eqn) for eqn in _equations(jaxpr)
             if eqn.primitive.name == "dot_general")
