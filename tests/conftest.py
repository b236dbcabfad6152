"""Shared test helpers: run scripts as a user would, with no network and tiny data."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Offline as on CI: the tfds download probe goes to a closed loopback port and is refused at once.
OFFLINE_ENV = {"EXAMPLES_PROBE_ADDRESS": "127.0.0.1:9", "TF_CPP_MIN_LOG_LEVEL": "2",
               "CUDA_VISIBLE_DEVICES": ""}
os.environ.update(OFFLINE_ENV)
# How far a killed and resumed run may end from an uninterrupted one with the same seed
# (relative), single-process or multi-worker: the backup holds the exact weights and
# optimizer state, and the resumed run first replays the input order of the finished
# epochs. Measured 0 here (bit-identical metrics).
RESUME_TOLERANCE = 1e-6


def cli(script, *args, timeout=300, env=None):
  """Runs examples/<script> with args; returns the CompletedProcess (text output)."""
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "examples", script), *args],
      cwd=ROOT, capture_output=True, text=True, timeout=timeout,
      env={**os.environ, **OFFLINE_ENV, **(env or {})})


def start_cli(script, *args, env=None):
  """Starts examples/<script> in the background (for kill/resume tests)."""
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "examples", script), *args],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env={**os.environ, **OFFLINE_ENV, **(env or {})})


def assert_user_error(proc, *fragments):
  """A clean failure: exit 2, one `error:` line naming the problem, no traceback."""
  assert proc.returncode != 0, proc.stdout + proc.stderr
  assert "Traceback" not in proc.stderr, proc.stderr
  text = proc.stderr.lower()
  for fragment in fragments:
    assert fragment.lower() in text, proc.stderr


@pytest.fixture
def fresh_flags():
  """A fresh absl FlagValues per test, so scripts can define their flags again."""
  from absl import flags

  def make(module, *argv):
    fv = flags.FlagValues()
    module.define_flags(fv)
    fv(["prog", *argv])
    return fv
  return make
