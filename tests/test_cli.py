"""The experiments' command line: the `jaxphys` command, `--help` with every default, and every
bad value refused in one line with exit code 2 before any work (issues 22 and 25)."""

import dataclasses
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from experiment_data import write_susy_file, write_tiny_mnist
from jaxphys.experiments import base, cli, mnist, quickstart, susy
from jaxphys.runs import RunDirectory

ROOT = Path(__file__).resolve().parents[1]
MODULES = {"quickstart": quickstart, "mnist": mnist, "susy": susy}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  return write_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


def _error(capsys, code: int) -> str:
  """The single stderr line of a refused command (exit code 2, nothing on stdout)."""
  captured = capsys.readouterr()
  assert code == 2, captured
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
  assert "Traceback" not in captured.err
  return lines[0]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_help_lists_every_setting_with_its_default(name, capsys):
  with pytest.raises(SystemExit) as done:
    MODULES[name].main(["--help"])
  assert done.value.code == 0
  text = " ".join(capsys.readouterr().out.split())
  for f in dataclasses.fields(MODULES[name].Config):
    flag = "--" + f.name.replace("_", "-")
    assert flag in text, flag
  valued = [f for f in dataclasses.fields(MODULES[name].Config) if f.type != "bool"]
  assert text.count("default") >= len(valued)


def test_help_shows_the_values_themselves(capsys):
  with pytest.raises(SystemExit):
    mnist.main(["--help"])
  text = " ".join(capsys.readouterr().out.split())
  assert "(default: 0.1)" in text  # --val-fraction
  assert "per model: softmax 30" in text  # epochs
  with pytest.raises(SystemExit):
    susy.main(["--help"])
  assert "(default: 256)" in " ".join(capsys.readouterr().out.split())  # --batch-size


def test_jaxphys_command_dispatches_to_the_experiments():
  scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
  assert scripts == {"jaxphys": "jaxphys.experiments.cli:main"}
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  for argv, code, text in ((["--help"], 0, "quickstart"), (["mnist", "--help"], 0, "--val-fraction"),
                           (["nope"], 2, "unknown experiment"), (["susy", "--seeds", "0", "--out", "x"], 2,
                                                                  "seeds must be in [1,")):
    done = subprocess.run([sys.executable, "-m", "jaxphys.experiments.cli", *argv], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == code and text in done.stdout + done.stderr, (argv, done)


def test_the_script_wrappers_are_the_package_modules():
  for name in MODULES:
    text = (ROOT / "experiments" / f"{name}.py").read_text()
    assert f"from jaxphys.experiments.{name} import main" in text and len(text.splitlines()) < 20


@pytest.mark.parametrize("argv, words", [
    (["mnist", "--seed", "100000000000000000000000"], "seed must be in [0, 9223372036854775807]"),
    (["mnist", "--seed", "-1"], "seed must be in"),
    (["mnist", "--batch-size", "0"], "batch_size must be in [1,"),
    (["mnist", "--lr", "nan"], "lr must be a finite number"),
    (["mnist", "--lr", "inf"], "lr must be a finite number"),
    (["mnist", "--lr", "-0.1"], "lr must be in (0, inf]"),
    (["mnist", "--val-fraction", "1"], "val_fraction must be in (0, 1)"),
    (["mnist", "--epochs", "0"], "epochs must be in [1,"),
    (["mnist", "--dropout", "1.5"], "dropout must be in [0, 1)"),
    (["mnist", "--epochs", "abc"], "invalid int value"),
    (["quickstart", "--epochs", "0"], "epochs must be in [1,"),
    (["quickstart", "--epochs", "-1"], "epochs must be in [1,"),
    (["quickstart", "--l2-strengths", "0", "nan"], "l2_strengths must be a finite number"),
    (["susy", "--dropout", "-0.1"], "dropout must be in [0, 1)"),
    (["susy", "--dropout", "nan"], "dropout must be a finite number"),
    (["susy", "--seeds", "100000000"], "seeds 100000000 of the"),
    (["susy", "--simulate", "1000000000000"], "simulate 1,000,000,000,000 events would need about"),
    (["susy", "--tree-threads", "-2"], "tree_threads must be in [0,"),
    (["susy", "--precision", "float16"], "invalid choice: 'float16'"),
])
def test_bad_values_are_one_line_exit_2(argv, words, tmp_path, capsys):
  name, *rest = argv
  line = _error(capsys, MODULES[name].main([*rest, "--out", str(tmp_path / "out")]))
  assert words in line, line
  assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.parametrize("out, words", [("", "out must name a folder"), ("  ", "out must name a folder")])
def test_empty_out_is_refused(out, words, capsys):
  assert words in _error(capsys, mnist.main(["--out", out]))


def test_out_that_cannot_be_written_is_refused(tmp_path, capsys):
  (tmp_path / "file").write_text("x")
  assert "is not a folder" in _error(capsys, mnist.main(["--out", str(tmp_path / "file")]))
  assert "cannot write into" in _error(capsys, mnist.main(["--out", str(tmp_path / "file" / "sub")]))


def test_data_too_small_to_split_is_refused(tiny, tmp_path, capsys):
  code = mnist.main(["--data-dir", str(tiny), "--model", "softmax", "--max-train", "4",
                     "--out", str(tmp_path / "o"), "--quiet"])
  assert "val_fraction 0.1 of 4 training examples leaves 0 for validation" in _error(capsys, code)
  assert not (tmp_path / "o").exists()  # refused before the run started


def test_a_one_class_susy_test_split_is_an_error(tmp_path, capsys):
  path = write_susy_file(tmp_path / "SUSY.csv", n=400, one_class_test=True)
  code = susy.main(["--data", str(path), "--models", "logreg", "--out", str(tmp_path / "o"), "--quiet"])
  line = _error(capsys, code)
  assert "the test split of 400 events holds 40 background and 0 signal events" in line
  assert not (tmp_path / "o").exists()


def test_debug_keeps_the_traceback(tmp_path):
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  cmd = [sys.executable, str(ROOT / "experiments" / "mnist.py"), "--lr", "nan", "--out", str(tmp_path)]
  plain = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
  debug = subprocess.run(cmd + ["--debug"], env=env, capture_output=True, text=True, timeout=120)
  assert plain.returncode == 2 and plain.stderr.count("\n") == 1
  assert debug.returncode != 0 and "Traceback" in debug.stderr and "lr must be a finite" in debug.stderr


def test_a_second_run_into_the_same_out_exits_2_naming_folder_and_pid(tiny, tmp_path, capsys):
  out = tmp_path / "out"
  with RunDirectory(out):  # another run holds the folder
    code = mnist.main(["--data-dir", str(tiny), "--model", "softmax", "--epochs", "1",
                       "--out", str(out), "--quiet"])
    line = _error(capsys, code)
  assert str(out) in line and str(os.getpid()) in line


def test_check_rejects_what_the_types_allow():
  @dataclasses.dataclass
  class C:
    n: int = base.setting(1, "a count", low=1, high=10)
    x: float = base.setting(0.5, "a rate", low=0.0, high=1.0, high_open=True)

  base.check(C())
  for bad, words in ((C(n=11), "n must be in [1, 10]"), (C(n=2.5), "n must be an integer"),
                     (C(x=float("inf")), "x must be a finite number"), (C(x=1.0), "x must be in [0, 1)")):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
      base.check(bad)


def test_cli_run_turns_user_errors_into_exit_2_and_keeps_bugs(capsys):
  def bad_input(args):
    raise ValueError("lr must be positive\nsecond line")

  def bug(args):
    raise KeyError("a bug")

  assert _error(capsys, cli.run(bad_input, [])) == "error: lr must be positive"
  with pytest.raises(KeyError):
    cli.run(bug, [])
