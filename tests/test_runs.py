"""Run folders (jaxphys.runs) and the file helpers (jaxphys._io): the lock, publishing as a
set, failure records, file modes, write errors."""

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

from jaxphys import _io
from jaxphys.errors import DataError, OutputError, RunLocked
from jaxphys.runs import RunDirectory, published_results

# Holds the lock of argv[1] until its stdin closes (or it is killed).
_HOLD = textwrap.dedent("""
    import sys
    from jaxphys.runs import RunDirectory
    with RunDirectory(sys.argv[1]) as run:
      print("locked", flush=True)
      sys.stdin.read()
""")


def _holder(out):
  env = dict(os.environ, PYTHONPATH=os.getcwd())
  proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True, env=env)
  assert proc.stdout.readline().strip() == "locked"
  return proc


def _files(folder):
  return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_publish_replaces_the_set_as_a_whole(tmp_path):
  out = tmp_path / "out"
  with pytest.raises(DataError, match="no published results"):
    published_results(out)
  with RunDirectory(out) as run:
    (run.staging / "results.json").write_text("1")
    (run.staging / "params.msgpack").write_text("1")
    assert run.checkpoints == out / "checkpoints" and run.checkpoints.is_dir()
    first = run.publish()
  assert published_results(out) == first and _files(first) == ["params.msgpack", "results.json"]
  with RunDirectory(out) as run:
    (run.staging / "results.json").write_text("2")
    assert (published_results(out) / "results.json").read_text() == "1"  # not yet
    second = run.publish()
  assert published_results(out) == second and _files(second) == ["results.json"]
  assert not first.exists()  # the previous set is removed once replaced
  assert sorted(p.name for p in (out / "runs").iterdir()) == [second.name]
  assert os.readlink(out / "latest") == os.path.join("runs", second.name)  # relative
  shutil.rmtree(second)
  with pytest.raises(DataError, match=f"latest: points to runs/{second.name}, which is missing"):
    published_results(out)


def test_without_publish_staged_files_go_and_the_published_set_stays(tmp_path):
  out = tmp_path / "out"
  with RunDirectory(out) as run:
    (run.staging / "results.json").write_text("good")
    run.publish()
  with pytest.raises(RuntimeError):
    with RunDirectory(out) as run:
      (run.staging / "results.json").write_text("bad")
      (run.staging / "plot.png").write_text("bad")
      failure = run.record_failure({"error": "training diverged", "epoch": 3})
      raise RuntimeError("diverged")
  assert (published_results(out) / "results.json").read_text() == "good"
  assert _files(published_results(out)) == ["results.json"]
  assert not run.staging.exists()
  assert failure == out / "failures" / f"{run.run_id}.json"
  assert json.loads(failure.read_text()) == {"error": "training diverged", "epoch": 3}


def test_a_second_run_into_the_folder_is_refused_naming_the_holder(tmp_path):
  out = tmp_path / "out"
  holder = _holder(out)
  try:
    with pytest.raises(RunLocked) as err:
      RunDirectory(out)
    assert str(out) in str(err.value) and f"process {holder.pid}" in str(err.value)
    assert err.value.pid == holder.pid and "\n" not in str(err.value)
  finally:
    holder.stdin.close()
    holder.wait(timeout=60)
  with RunDirectory(out) as run:  # released at exit
    with pytest.raises(RunLocked, match=f"process {os.getpid()}"):
      RunDirectory(out)  # also within one process
  assert run.run_id


def test_the_holder_is_named_even_when_it_writes_its_pid_after_the_refusal_began(tmp_path):
  import fcntl
  import subprocess
  import sys
  import threading

  out = tmp_path / "out"
  out.mkdir()
  gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
  try:
    os.write(fd, gone.stdout.encode())  # an earlier run's PID, its process gone
    fcntl.flock(fd, fcntl.LOCK_EX)  # the new holder, between its lock and its PID
    with pytest.raises(RunLocked, match="process unknown"):  # never the stale PID
      RunDirectory(out)
    late = threading.Timer(0.2, lambda: os.pwrite(fd, f"{os.getpid()}\n".encode().ljust(16), 0))
    late.start()
    with pytest.raises(RunLocked) as err:
      RunDirectory(out)
    late.join()
    assert err.value.pid == os.getpid()
  finally:
    os.close(fd)


def test_the_lock_of_a_killed_run_is_taken_over_and_its_files_removed(tmp_path):
  out = tmp_path / "out"
  with RunDirectory(out) as run:
    (run.staging / "results.json").write_text("good")
    run.publish()
  holder = _holder(out)
  staged = [p for p in (out / "runs").iterdir() if p != published_results(out)]
  assert len(staged) == 1
  holder.kill()
  holder.wait()
  with RunDirectory(out) as run:
    assert not staged[0].exists()
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted([run.run_id, published_results(out).name])
  assert (published_results(out) / "results.json").read_text() == "good"


def test_bad_output_folders_are_one_line_errors(tmp_path):
  with pytest.raises(ValueError, match="out: the output folder is an empty path"):
    RunDirectory("")
  (tmp_path / "file").write_text("")
  with pytest.raises(OutputError, match="file: exists and is not a folder"):
    RunDirectory(tmp_path / "file")
  with pytest.raises(OutputError, match=r"file/sub: cannot write \(Not a directory\)"):
    RunDirectory(tmp_path / "file" / "sub")
  with RunDirectory(tmp_path / "o") as run:
    run.publish()
    with pytest.raises(ValueError, match="already published"):
      run.publish()
    with pytest.raises(ValueError, match="record: expected a dict"):
      run.record_failure("boom")


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_the_umask_says(tmp_path, mask, mode):
  old = os.umask(mask)
  try:
    _io.atomic_write_bytes(tmp_path / "a.bin", b"x")
    _io.write_json(tmp_path / "b.json", {"a": 1})
    with open(tmp_path / "reference", "w"):  # what Python's own open gives
      pass
  finally:
    os.umask(old)
  for name in ("a.bin", "b.json", "reference"):
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_write_errors_name_the_file(tmp_path, monkeypatch):
  real_fsync = os.fsync

  def full(fd):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "fsync", full)
  with pytest.raises(OutputError, match=r"r.json: cannot write \(No space left on device\)") as err:
    _io.write_json(tmp_path / "r.json", {"a": 1})
  monkeypatch.setattr(os, "fsync", real_fsync)
  assert "\n" not in str(err.value) and err.value.path == tmp_path / "r.json"
  assert os.listdir(tmp_path) == []  # no temporary file left
  # An OSError of another file inside the block keeps its own message.
  with pytest.raises(FileNotFoundError):
    with _io.atomic_open(tmp_path / "x") as f:
      f.write(open(tmp_path / "missing").read().encode())
  assert os.listdir(tmp_path) == []


def test_json_refuses_nan_naming_the_key(tmp_path):
  with pytest.raises(ValueError, match=r"r.json: \['auc'\]\[1\] is not finite"):
    _io.write_json(tmp_path / "r.json", {"ok": 1.0, "auc": [0.5, float("nan")]})
  assert not (tmp_path / "r.json").exists()


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                        text=True).stdout.strip()
  stale = tmp_path / f".p.msgpack.jaxphys-{dead}-abc.tmp"
  live = tmp_path / f".p.msgpack.jaxphys-{os.getpid()}-abc.tmp"
  stale.write_text("")
  live.write_text("")
  _io.remove_stale_temporaries(tmp_path)
  assert not stale.exists() and live.exists()


def test_runs_in_one_second_keep_every_failure_record(tmp_path):
  out = tmp_path / "out"
  records = []
  for i in range(3):  # one process, the same second: the same time stamp and PID
    with RunDirectory(out) as run:
      records.append(run.record_failure({"attempt": i}))
  assert len(set(records)) == 3
  assert [json.loads(p.read_text()) for p in records] == [{"attempt": i} for i in range(3)]


def test_failure_records_take_what_a_failure_holds(tmp_path):
  import numpy as np

  with RunDirectory(tmp_path / "out") as run:
    import jax.numpy as jnp

    path = run.record_failure({"loss": [np.float32(0.5), float("nan"), -np.inf], "epoch": np.int64(3),
                               "params": np.array([1.0, np.inf]), "scalar": np.array(2.0),
                               "device": jnp.array([np.nan, 1.0])})
  assert json.loads(path.read_text()) == {"loss": [0.5, "nan", "-inf"], "epoch": 3, "params": [1.0, "inf"],
                                          "scalar": 2.0, "device": ["nan", 1.0]}


@pytest.mark.parametrize("interrupt", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_a_failure_after_the_swap_never_leaves_the_link_dangling(tmp_path, monkeypatch, interrupt):
  from jaxphys import runs

  out = tmp_path / "out"
  with RunDirectory(out) as run:
    (run.staging / "results.json").write_text("good")
    run.publish()

  real = runs.fsync_dir

  def fail(folder):  # flushing the output folder's entries, i.e. after the swap
    if folder == out:
      raise interrupt
    real(folder)

  with pytest.raises((OutputError, KeyboardInterrupt)):
    with RunDirectory(out) as run:
      (run.staging / "results.json").write_text("new")
      monkeypatch.setattr(runs, "fsync_dir", fail)  # the link is swapped, then this fails
      run.publish()
  monkeypatch.undo()
  assert (published_results(out) / "results.json").read_text() == "new"
  with RunDirectory(out):  # and the next run keeps it
    pass
  assert (published_results(out) / "results.json").read_text() == "new"


def test_a_file_system_without_symbolic_links_is_refused_before_any_work(tmp_path, monkeypatch):
  def no_links(*args, **kwargs):
    raise OSError(1, "Operation not permitted")

  monkeypatch.setattr(os, "symlink", no_links)
  with pytest.raises(OutputError, match=r"out: this file system cannot hold symbolic links") as err:
    RunDirectory(tmp_path / "out")
  assert "\n" not in str(err.value)
  monkeypatch.undo()
  with RunDirectory(tmp_path / "out"):  # the lock was released
    pass


def test_publishing_names_a_staged_file_it_cannot_flush_and_skips_special_files(tmp_path, monkeypatch):
  with RunDirectory(tmp_path / "out") as run:
    (run.staging / "results.json").write_text("1")
    os.mkfifo(run.staging / "pipe")  # opening it to flush would wait forever
    os.symlink(run.staging / "gone", run.staging / "dangling")

    def failing(fd):
      raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OutputError, match=r"results.json: cannot write \(Input/output error\)"):
      run.publish()
    monkeypatch.undo()
    published = run.publish()
  assert (published / "results.json").read_text() == "1"


def test_publishing_a_removed_staging_folder_keeps_the_previous_set(tmp_path):
  out = tmp_path / "out"
  with RunDirectory(out) as run:
    (run.staging / "results.json").write_text("good")
    run.publish()
  with RunDirectory(out) as run:
    shutil.rmtree(run.staging)
    with pytest.raises(OutputError, match=r"runs/.*: the staging folder is missing"):
      run.publish()
  assert (published_results(out) / "results.json").read_text() == "good"


def test_the_run_folder_entry_is_flushed_before_the_link_names_it(tmp_path, monkeypatch):
  from jaxphys import runs

  events = []
  real_fsync_dir, real_replace = runs.fsync_dir, os.replace
  monkeypatch.setattr(runs, "fsync_dir", lambda folder: (events.append(("fsync", str(folder))),
                                                         real_fsync_dir(folder)))
  monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b)))
  with RunDirectory(tmp_path / "out") as run:
    run.publish()
  swap = events.index(("replace", str(tmp_path / "out" / "latest")))
  assert ("fsync", str(tmp_path / "out" / "runs")) in events[:swap]  # a power cut cannot leave a dangling link


def test_a_latest_that_is_not_a_link_is_refused_before_any_work(tmp_path):
  (tmp_path / "out" / "latest").mkdir(parents=True)  # publishing could never replace it
  with pytest.raises(OutputError, match=r"out/latest: exists and is not the link to the published results"):
    RunDirectory(tmp_path / "out")


def test_a_full_disk_when_taking_the_lock_is_one_line_and_releases_it(tmp_path, monkeypatch):
  def full(*args):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "pwrite", full)  # writing our PID into the lock file
  with pytest.raises(OutputError, match=r"out/.lock: cannot write \(No space left on device\)"):
    RunDirectory(tmp_path / "out")
  monkeypatch.undo()
  with RunDirectory(tmp_path / "out"):  # not held by a leaked descriptor
    pass


def test_a_full_disk_when_probing_for_links_is_not_blamed_on_the_file_system(tmp_path, monkeypatch):
  def full(*args, **kwargs):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "symlink", full)
  with pytest.raises(OutputError, match=r"out/.latest.\d+: cannot write \(No space left on device\)"):
    RunDirectory(tmp_path / "out")
