"""Failure modes of runs and their files, at the library level: processes killed with
SIGKILL at random moments while publishing and while checkpointing, two runs into one
folder, a full disk (a small tmpfs when this runs as root and may mount, otherwise an
injected ``OSError``), tampered checkpoints and caches. The CLI's own corpus is in
tests/test_cli*.py."""

import contextlib
import errno
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from jaxphys import _io
from jaxphys.errors import OutputError
from jaxphys.runs import RunDirectory, published_results


@contextlib.contextmanager
def small_disk(tmp_path, size="256k", mount=True):
  """A folder on a tmpfs of ``size`` (root, where mounting is allowed); None elsewhere."""
  where = tmp_path / "disk"
  where.mkdir()
  mounted = mount and os.geteuid() == 0 and subprocess.run(
      ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
      capture_output=True).returncode == 0
  try:
    yield where if mounted else None
  finally:
    if mounted:
      subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder):
  """Fills the disk holding ``folder``, leaving a few bytes."""
  fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
  with contextlib.suppress(OSError):
    while True:
      os.write(fd, b"\0" * 4096)
  os.close(fd)


def _inject_enospc(monkeypatch):
  def full(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(os, "fsync", full)


def _child(script, *args):
  env = dict(os.environ, PYTHONPATH=os.getcwd())
  return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)


# ------------------------------------------------------------------ publishing

# Publishes run after run, each a set of files that all hold the run's number.
_PUBLISHER = textwrap.dedent("""
    import sys
    from jaxphys._io import atomic_write_bytes
    from jaxphys.runs import RunDirectory
    out = sys.argv[1]
    for i in range(10**6):
      with RunDirectory(out) as run:
        for name in ("results.json", "params.msgpack", "plot.png", "log.csv"):
          atomic_write_bytes(run.staging / name, str(i).encode() * 2000)
        run.publish()
      if i == 0:
        print("published", flush=True)
""")


def _consistent(out):
  """The published set's files are complete and all from one run."""
  folder = published_results(out)
  names = sorted(p.name for p in folder.iterdir())
  assert names == ["log.csv", "params.msgpack", "plot.png", "results.json"], names
  contents = {(folder / n).read_bytes() for n in names}
  assert len(contents) == 1, "files from different runs"
  (content,) = contents
  number = content[: len(content) // 2000]
  assert content == number * 2000
  return int(number)


@pytest.mark.slow
def test_sigkill_while_publishing_leaves_a_complete_set(tmp_path):
  rng = np.random.default_rng(int(time.time()))
  out = tmp_path / "out"
  seen = []
  for _ in range(6):
    proc = _child(_PUBLISHER, out)
    assert proc.stdout.readline().strip() == "published", proc.stderr.read()
    time.sleep(rng.uniform(0.0, 0.3))
    proc.kill()
    proc.wait()
    seen.append(_consistent(out))
    with RunDirectory(out) as run:  # the killed run's staging and links are cleaned
      leftovers = [p.name for p in (out / "runs").iterdir() if p.name != run.run_id]
      assert leftovers == [published_results(out).name]
      assert not list(out.glob(".latest.*"))
  assert all(n >= 0 for n in seen)


# ------------------------------------------------------------------ full disk

@pytest.mark.parametrize("mount", [True, False], ids=["tmpfs", "injected"])
def test_full_disk_while_staging_keeps_the_previous_set(tmp_path, monkeypatch, mount):
  with small_disk(tmp_path, mount=mount) as disk:
    out = (disk or tmp_path) / "out"
    with RunDirectory(out) as run:
      _io.atomic_write_bytes(run.staging / "results.json", b"good")
      run.publish()
    with pytest.raises(OutputError) as err:
      with RunDirectory(out) as run:
        if disk is not None:
          _fill(disk)
          _io.atomic_write_bytes(run.staging / "results.json", b"x" * 100_000)
        else:
          _inject_enospc(monkeypatch)
          _io.atomic_write_bytes(run.staging / "results.json", b"x")
    monkeypatch.undo()
    message = str(err.value)
    assert message.endswith("results.json: cannot write (No space left on device)"), message
    assert str(run.staging) in message
    assert (published_results(out) / "results.json").read_bytes() == b"good"
    assert not run.staging.exists() and not list(published_results(out).glob(".*"))
    if disk is not None:
      (disk / "filler").unlink()


# ------------------------------------------------------------------ two runs at once

_RACER = textwrap.dedent("""
    import sys, time
    from jaxphys._io import atomic_write_bytes
    from jaxphys.errors import RunLocked
    from jaxphys.runs import RunDirectory
    out, me, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))
    try:
      with RunDirectory(out) as run:
        for name in ("results.json", "params.msgpack"):
          atomic_write_bytes(run.staging / name, me.encode())
          time.sleep(0.2)
        run.publish()
    except RunLocked as e:
      print(e)
      sys.exit(2)
""")


def test_two_runs_started_together_one_is_refused(tmp_path):
  out = tmp_path / "out"
  start = time.time() + 3.0  # both past their imports
  procs = [_child(_RACER, out, name, start) for name in ("a", "b")]
  codes = [p.wait(timeout=120) for p in procs]
  assert sorted(codes) == [0, 2], [p.stderr.read() for p in procs]
  winner, loser = (procs[0], procs[1]) if codes[0] == 0 else (procs[1], procs[0])
  refusal = loser.stdout.read().strip()
  assert refusal.startswith(f"{out}: another run is using this output folder (process {winner.pid})")
  name = "a" if winner is procs[0] else "b"
  folder = published_results(out)
  assert {(folder / n).read_text() for n in ("results.json", "params.msgpack")} == {name}


# ------------------------------------------------------------------ checkpoint writes

_CHECKPOINTING = textwrap.dedent("""
    import sys, jax, numpy as np, optax, jaxphys as jp
    from jaxphys.checkpoint import Checkpointer
    state = jp.create_train_state(jax.random.key(0), jp.MLP((1024, 1024, 2)), optax.adam(1e-3),
                                  np.zeros((1, 512), np.float32))
    ckpt = Checkpointer(sys.argv[1], keep=2, best_metric="eval_loss", resume=True)
    restored = ckpt.restore(state, jax.random.key(1))
    start = 1 if restored is None else restored[0] + 1
    state = state if restored is None else restored[1]
    for epoch in range(start, start + 10**6):
      state = state.replace(step=state.step + 1)
      ckpt.save(epoch, state, jax.random.key(1), {"eval_loss": [1.0 / epoch] * epoch})
      if epoch == start:
        print("saved", flush=True)
""")


@pytest.mark.slow
def test_sigkill_while_checkpointing_leaves_only_complete_checkpoints(tmp_path):
  from jaxphys.checkpoint import Checkpointer

  import jax
  import optax
  import jaxphys as jp

  rng = np.random.default_rng(int(time.time()))
  template = jp.create_train_state(jax.random.key(0), jp.MLP((1024, 1024, 2)), optax.adam(1e-3),
                                   np.zeros((1, 512), np.float32))
  for _ in range(3):
    proc = _child(_CHECKPOINTING, tmp_path)
    assert proc.stdout.readline().strip() == "saved", proc.stderr.read()
    time.sleep(rng.uniform(0.0, 1.0))
    proc.kill()
    proc.wait()
    ckpt = Checkpointer(tmp_path)  # removes the killed write's temporary file
    assert not list(tmp_path.glob(".*")), list(tmp_path.glob(".*"))
    epochs = ckpt.all_epochs()
    assert 1 <= len(epochs) <= 3  # the last 2 and the best, plus one if killed before pruning
    for e in epochs:  # every checkpoint left is complete and verifies
      done, state, history = ckpt.restore(template, jax.random.key(1), e)
      assert done == e and int(state.step) == e and len(history["eval_loss"]) == e


@pytest.mark.parametrize("mount", [True, False], ids=["tmpfs", "injected"])
def test_full_disk_while_checkpointing_is_one_quiet_line(tmp_path, monkeypatch, capfd, mount):
  import jax
  import optax
  import jaxphys as jp
  from jaxphys.checkpoint import Checkpointer

  state = jp.create_train_state(jax.random.key(0), jp.MLP((256, 2)), optax.adam(1e-3),
                                np.zeros((1, 64), np.float32))
  key = jax.random.key(1)
  with small_disk(tmp_path, mount=mount) as disk:
    folder = (disk or tmp_path) / "checkpoints"
    ckpt = Checkpointer(folder, keep=5)
    ckpt.save(1, state, key, {"train_loss": [0.5]})
    capfd.readouterr()
    if disk is not None:
      _fill(disk)
    else:
      _inject_enospc(monkeypatch)
    with pytest.raises(OutputError) as err:
      ckpt.save(2, state, key, {"train_loss": [0.5, 0.4]})
    monkeypatch.undo()
    assert str(err.value) == f"{folder / 'epoch_2.ckpt'}: cannot write (No space left on device)"
    out, errors = capfd.readouterr()
    assert out == "" and errors == ""  # no tracebacks, no log lines
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_1.ckpt"]  # no temporary left
    assert ckpt.restore(state, key)[0] == 1
    if disk is not None:
      (disk / "filler").unlink()
