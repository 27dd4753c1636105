"""The trainer's CPU memory settings (``jaxphys.train._backend.share_one_heap`` and
``keep_freed_memory``): after them, glibc serves large blocks from its heap and keeps
them when freed, with ``JAXPHYS_SHARED_HEAP=1`` in the main heap that threads started
after ``import jaxphys`` share (blocks over 64 MiB too), and in the extra heaps of
threads that have heaps of their own, as its own accounting (``mallinfo2``) shows;
``JAXPHYS_KEEP_MEMORY=0`` leaves ``malloc`` as it was. Each case runs in a fresh
process: the settings are process-wide."""

import ctypes
import json
import os
import platform
import subprocess
import sys

import jax
import pytest

from jaxphys.train import _backend

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc"
    or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc's malloc on Linux only")

# Prints, for a 64 MiB NumPy block before and after fit compiles a CPU program: the
# bytes glibc has mapped with mmap while the block lives, and the free bytes its heaps
# keep once the block is freed; then, after fit, with the argument "early": the heap
# bytes glibc gives back when a thread bound to a heap of its own before jaxphys was
# imported (as XLA's workers are when JAX ran first) frees a 40 MiB block that did not
# fit beside the 30 MiB it holds in its first heap, so that glibc made an extra heap
# for it; without: for a 100 MiB block of a thread started after fit (as XLA's workers
# are), the bytes mapped while it lives and the free bytes kept once it is freed.
_SCRIPT = r"""
import ctypes, json, sys, threading

class Info(ctypes.Structure):
  _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
              "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def block():
  a = np.ones(8 << 20)  # 64 MiB
  mapped = libc.mallinfo2().hblkhd
  del a
  return {"mapped": mapped, "kept": libc.mallinfo2().fordblks}

seen, go = {}, threading.Event()
def work():
  libc.free(libc.malloc(64))  # binds this thread to a heap of its own
  go.wait()
  seen["before"] = libc.mallinfo2().arena
  held, extra = libc.malloc(30 << 20), libc.malloc(40 << 20)
  seen["with"] = libc.mallinfo2().arena
  libc.free(extra)
  seen["after"] = libc.mallinfo2().arena
  libc.free(held)
early = threading.Thread(target=work, daemon=True)
if sys.argv[1] == "early":
  early.start()

def thread_big():
  seen = {}
  def work():
    mapped = libc.mallinfo2().hblkhd
    big = libc.malloc(100 << 20)
    seen["mapped"] = libc.mallinfo2().hblkhd - mapped
    libc.free(big)
    seen["kept"] = libc.mallinfo2().fordblks
  worker = threading.Thread(target=work)
  worker.start()
  worker.join()
  return seen

import jax, numpy as np, optax, jaxphys as jp
out = {"before": block()}
model, tx = jp.MLP((4, 2)), optax.sgd(0.1)
x, y = np.ones((16, 3), np.float32), np.zeros(16, np.int32)
state = jp.create_train_state(jax.random.key(0), model, tx, x)
jp.fit(state, jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx), x, y,
       key=jax.random.key(1), epochs=1, batch_size=8)
out["after"] = block()
if sys.argv[1] == "early":
  go.set()
  early.join()
  out["thread"] = {"grew": seen["with"] - seen["before"], "gave_back": seen["with"] - seen["after"]}
else:
  out["big"] = thread_big()
from jaxphys.train import _backend
out["applied"] = _backend.keep_freed_memory()
out["one_heap"] = _backend._ONE_HEAP
print(json.dumps(out))
"""
MiB = 1 << 20


def _run(switch, mode="late", shared="1"):
  env = {k: v for k, v in os.environ.items() if k not in ("JAXPHYS_KEEP_MEMORY", "JAXPHYS_SHARED_HEAP")}
  env["JAX_PLATFORMS"] = "cpu"
  if switch is not None:
    env["JAXPHYS_KEEP_MEMORY"] = switch
  if shared is not None:
    env["JAXPHYS_SHARED_HEAP"] = shared
  done = subprocess.run([sys.executable, "-c", _SCRIPT, mode], env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_the_first_cpu_program_large_blocks_come_from_the_heap_and_stay():
  out = _run(None)
  assert out["applied"] is True and out["one_heap"] is True
  assert out["before"]["mapped"] >= 64 * MiB  # glibc's default: a block this large is mmap'd
  assert out["after"]["mapped"] < 64 * MiB     # now from the heap...
  assert out["after"]["kept"] >= 64 * MiB      # ...which keeps it once freed
  assert out["big"]["mapped"] < 100 * MiB      # a new thread's block over 64 MiB: the heap's...
  assert out["big"]["kept"] >= 100 * MiB       # ...kept once freed


def test_by_default_threads_keep_heaps_of_their_own():
  out = _run(None, shared=None)
  assert out["applied"] is True and out["one_heap"] is False
  assert out["after"]["mapped"] < 64 * MiB     # the main thread's large blocks from the heap...
  assert out["after"]["kept"] >= 64 * MiB      # ...kept once freed
  assert out["big"]["mapped"] >= 100 * MiB     # a new thread's block over 64 MiB: mapped (the
  #                                              cost JAXPHYS_SHARED_HEAP=1 removes)


def test_a_thread_with_a_heap_of_its_own_keeps_its_extra_heap():
  out = _run(None, "early")
  assert out["one_heap"] is False              # (the thread's heap came before the import)
  assert out["thread"]["grew"] >= 70 * MiB     # the thread's heaps took both blocks...
  assert out["thread"]["gave_back"] == 0       # ...and keep the extra one once it is empty


def test_switched_off_malloc_stays_as_it_was():
  out = _run("0")
  assert out["applied"] is False and out["one_heap"] is False
  assert out["after"]["mapped"] >= 64 * MiB
  assert out["big"]["mapped"] >= 100 * MiB


@pytest.mark.parametrize("switch", ["JAXPHYS_KEEP_MEMORY", "JAXPHYS_SHARED_HEAP"])
def test_a_wrong_switch_is_a_one_line_error(monkeypatch, switch):
  if jax.default_backend() != "cpu":
    pytest.skip("the setting is read when a CPU program is compiled")
  _backend.keep_freed_memory.cache_clear()
  monkeypatch.setenv(switch, "yes")
  try:
    with pytest.raises(ValueError, match=rf"^{switch} must be 0 \(off\) or 1 \(on\), got 'yes'$"):
      _backend.jit(lambda v: v + 1, {})
  finally:
    _backend.keep_freed_memory.cache_clear()


@pytest.mark.parametrize("switch", ["JAXPHYS_KEEP_MEMORY", "JAXPHYS_SHARED_HEAP"])
def test_a_wrong_switch_leaves_the_import_alone_and_stops_the_first_cpu_program(switch):
  env = dict(os.environ, JAX_PLATFORMS="cpu", **{switch: "yes"})
  code = ("import jax, jaxphys\nfrom jaxphys.train import _backend\nprint(_backend._ONE_HEAP)\n"
          "_backend.jit(lambda v: v + 1, {})")
  done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode != 0 and done.stdout.split() == ["False"]
  assert done.stderr.strip().splitlines()[-1] == (
      f"ValueError: {switch} must be 0 (off) or 1 (on), got 'yes'")
