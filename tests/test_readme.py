"""The README as a newcomer follows it: its commands exist, parse, and the main job runs."""
import glob
import importlib
import os
import re
import shlex
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
      if line and not line.startswith(("examples/", "common/", "data/", "results/", "scripts/",
                                       "tests/")):
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
