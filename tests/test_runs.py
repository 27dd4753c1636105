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
