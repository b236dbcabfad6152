"""The README as a newcomer follows it: its commands exist, parse, and the main job runs."""
import glob
import importlib
import os
import re
import shlex
import shutil
import subprocess

import pytest
from absl import flags

from tests.conftest import ROOT, cli

README = os.path.join(ROOT, "README.md")
README_ZH = os.path.join(ROOT, "README.zh-CN.md")


def code_blocks(path):
  with open(path, encoding="utf-8") as f:
    return re.findall(r"```[a-z]*\n(.*?)```", f.read(), flags=re.S)


def commands(path):
  """Shell commands in the README's code blocks, continuation lines joined, comments dropped."""
  out = []
  for block in code_blocks(path):
    for line in block.replace("\\\n", " ").splitlines():
      line = line.split("#", 1)[0].strip()
      if re.match(r"(make|\.venv/|python|pip|[A-Z_]+=)", line):  # a command, not a listing
        out.append(line)
  return out


def test_readme_opens_with_the_three_commands_and_ci_runs_exactly_two_of_them():
  first = commands(README)[:3]
  assert first == ["make install", "make run-mnist", "make test"]
  with open(os.path.join(ROOT, ".ci", "run")) as f:
    ci = [l.strip() for l in f if l.strip().startswith("make ")]
  assert ci == ["make install", "make test"]


def test_every_make_target_in_the_readme_exists():
  for command in commands(README):
    if command.startswith("make "):
      target = command.split()[1]
      dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
      assert dry.returncode == 0, f"{command}: {dry.stderr}"


def example_commands():
  for command in commands(README):
    words = shlex.split(command)
    if len(words) >= 2 and words[0].endswith("python") and words[1].startswith("examples/"):
      yield words[1], words[2:]


@pytest.mark.parametrize("script,args", list(example_commands()))
def test_every_example_command_in_the_readme_parses(script, args):
  module = importlib.import_module("examples." + os.path.basename(script)[:-3])
  fv = flags.FlagValues()
  module.define_flags(fv)
  fv(["prog", *args])  # raises on an unknown flag or a bad value


def test_every_example_is_documented():
  with open(README, encoding="utf-8") as f:
    text = f.read()
  for path in glob.glob(os.path.join(ROOT, "examples", "*.py")):
    name = os.path.basename(path)
    if name != "__init__.py":
      assert f"examples/{name}" in text, f"README says nothing about examples/{name}"


def test_the_main_job_runs_as_the_readme_says(tmp_path):
  # `make run-mnist` is `python examples/mnist_cnn.py`; --dry_run keeps it to one tiny pass.
  proc = cli("mnist_cnn.py", "--dry_run", f"--output_dir={tmp_path}")
  assert proc.returncode == 0, proc.stderr
  assert (tmp_path / "model.keras").exists()


@pytest.mark.skipif(not os.path.exists(README_ZH), reason="no Chinese README yet")
def test_chinese_readme_has_the_same_commands():
  assert commands(README_ZH) == commands(README)


def working_tree_copy(dest):
  """What a fresh clone of this working tree holds (tracked and new files, not ignored ones)."""
  listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout
  for rel in filter(None, listed.split("\0")):
    src = os.path.join(ROOT, rel)
    if os.path.isfile(src):
      os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
      shutil.copy2(src, os.path.join(dest, rel))


@pytest.mark.slow
def test_a_newcomer_follows_the_readme_from_a_fresh_clone(tmp_path):
  """make run-mnist on the offline default, then the README's predict command, literally.

  `make install` and `make test` are what CI runs on a clean clone; here the copy shares this
  checkout's virtual environment (make's -o keeps it from reinstalling into it) and imports
  the copy's own common/ through PYTHONPATH.
  """
  clone = tmp_path / "clone"
  working_tree_copy(clone)
  os.symlink(os.path.join(ROOT, ".venv"), clone / ".venv")
  env = {**os.environ, "PYTHONPATH": str(clone), "EXAMPLES_OFFLINE": "1"}
  run = subprocess.run(["make", "-o", ".venv/.installed", "run-mnist"], cwd=clone, env=env,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
  assert "bundled" in run.stdout + run.stderr  # offline: the bundled sample, and it says so
  predict = next(c for c in commands(README) if "--mode=predict" in c and "mnist_cnn" in c)
  proc = subprocess.run(shlex.split(predict), cwd=clone, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  for name in ("seven.png", "two.png"):  # one line per image: digit and probability
    assert re.search(name + r": \d \(probability [01]\.\d{3}\)", proc.stdout), proc.stdout
