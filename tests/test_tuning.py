"""keras-tuner sweeps: search, resume, results files, retraining the best configuration."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from common import datasets
from examples import mnist_cnn
from tests.conftest import OFFLINE_ENV, ROOT


@pytest.fixture(scope="module")
def tiny():
  return datasets.load("mnist", source="bundled", train_size=240, test_size=60,
                       validation_split=0.25)


def test_search_writes_best_and_trials_then_resumes_then_retrains(fresh_flags, tmp_path, tiny,
                                                                  capsys):
  args = ["--mode=tune", "--max_trials=2", "--tune_epochs=1", f"--output_dir={tmp_path}",
          "--strategy=cpu"]
  stats = mnist_cnn.run(fresh_flags(mnist_cnn, *args), datasets_override=tiny)
  assert stats["trials"] == 2
  assert 0 <= stats["default_score"] <= 1 and (tmp_path / "tuning.json").exists()
  best = json.loads((tmp_path / "best_hparams.json").read_text())
  assert {"learning_rate", "batch_size", "filters_1", "units", "dropout"} <= set(best)
  with open(tmp_path / "trials.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 and all(r["score"] for r in rows)
  assert float(rows[0]["score"]) >= float(rows[1]["score"])  # ranked best first
  assert "rank" in capsys.readouterr().out

  # the same command resumes: the oracle already holds both trials, none is rerun
  again = mnist_cnn.run(fresh_flags(mnist_cnn, *args), datasets_override=tiny)
  assert again["trials"] == 2 and again["best_hparams"] == stats["best_hparams"]

  # --fresh starts over
  fresh = mnist_cnn.run(fresh_flags(mnist_cnn, *args, "--fresh", "--max_trials=1"),
                        datasets_override=tiny)
  assert fresh["trials"] == 1

  out = tmp_path / "retrain"
  result = mnist_cnn.run(
      fresh_flags(mnist_cnn, "--epochs=1", f"--hparams={tmp_path}/best_hparams.json",
                  f"--output_dir={out}", "--strategy=cpu"), datasets_override=tiny)
  assert result["settings"]["hparams"] == json.loads(
      (tmp_path / "best_hparams.json").read_text())
  assert result["settings"]["batch_size"] == result["settings"]["hparams"]["batch_size"]


def test_default_hyperparameters_are_the_tutorials_model():
  from common.heads import ClassifierHead
  model = mnist_cnn.build_model("document", ClassifierHead(tuple("0123456789")), "mnist")
  assert [type(l).__name__ for l in model.layers] == [
      "Rescaling", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense",
      "Dense"]
  assert model.count_params() == 225_034


def test_bad_hparams_file_is_a_clear_error(fresh_flags, tmp_path, tiny):
  from common.errors import UserError
  (tmp_path / "h.json").write_text("{not json")
  with pytest.raises(UserError, match="not valid JSON"):
    mnist_cnn.run(fresh_flags(mnist_cnn, f"--hparams={tmp_path}/h.json",
                              f"--output_dir={tmp_path}/o"), datasets_override=tiny)


def test_distributed_role_reads_keras_tuners_variables(monkeypatch):
  from common import tuning
  from common.errors import UserError
  for name in tuning.ENV_VARS:
    monkeypatch.delenv(name, raising=False)
  assert tuning.distributed_role() is None
  monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
  with pytest.raises(UserError, match="KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT not"):
    tuning.distributed_role()  # keras-tuner would silently run a search of its own
  monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
  monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "http")
  with pytest.raises(UserError, match="not a TCP port"):
    tuning.distributed_role()
  monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
  assert tuning.distributed_role() == "worker"
  monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
  assert tuning.distributed_role() == "chief"


def launch_tuning(output_dir, popen=False):
  """The tiny distributed search of these tests: chief + 2 workers, 2 trials of 1 epoch."""
  args = [sys.executable, "scripts/launch_tuning.py", "--workers=2", "--timeout=150", "--",
          "examples/mnist_cnn.py", "--mode=tune", "--max_trials=2", "--tune_epochs=1",
          "--data_source=bundled", "--train_size=160", "--test_size=20",
          "--validation_split=0.25", f"--output_dir={output_dir}"]
  env = {**os.environ, **OFFLINE_ENV}
  if popen:
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=180, env=env)


def test_search_shared_by_a_chief_and_two_local_workers(tmp_path):
  """keras-tuner's distributed mode through scripts/launch_tuning.py: the chief's oracle hands
  the trials out, both workers run some, and the chief's results hold all of them."""
  proc = launch_tuning(tmp_path)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
  out = proc.stdout
  assert "launch_tuning: the search finished (chief and 2 worker(s))" in out
  ran = dict(re.findall(r"^\[(tuner\d)\] tune: \1 ran (\d) trial", out, re.M))
  assert ran == {"tuner0": "1", "tuner1": "1"}, out[-4000:]  # both workers trained a trial
  assert re.search(r"^\[tuner1\] \d+/\d+ - ", out, re.M)
  assert not re.search(r"^\[chief\] \d+/\d+ - ", out, re.M)  # the chief serves, trains no trial
  with open(tmp_path / "trials.csv") as f:
    rows = list(csv.DictReader(f))
  assert sorted(r["trial_id"] for r in rows) == ["0", "1"]
  assert sorted(r["worker"] for r in rows) == ["tuner0", "tuner1"]
  assert all(r["status"] == "COMPLETED" and 0 <= float(r["score"]) <= 1 for r in rows)
  stats = json.loads((tmp_path / "tuning.json").read_text())
  assert stats["trials"] == 2 and stats["best_hparams"] == json.loads(
      (tmp_path / "best_hparams.json").read_text())
  assert "[chief] best val_accuracy" in out and "[tuner0] best" not in out
  # the saved oracle holds no unfinished trial, so rerunning the command reruns nothing
  oracle = json.loads((tmp_path / "tuning" / "oracle.json").read_text())
  assert oracle["ongoing_trials"] == {}


def test_killed_tuning_worker_stops_the_search_and_a_rerun_resumes_it(tmp_path):
  proc = launch_tuning(tmp_path, popen=True)
  lines = []
  reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
  reader.start()
  workers_file = tmp_path / "tuning" / "trial_workers.json"
  deadline = time.time() + 120
  try:  # wait until tuner1 holds a trial, then kill it
    while (time.time() < deadline and proc.poll() is None
           and "tuner1" not in (workers_file.read_text() if workers_file.exists() else "")):
      time.sleep(0.05)
    text = "".join(lines)
    assert proc.poll() is None, text[-3000:]
    pids = dict(re.findall(r"launch_tuning: (\S+) is pid (\d+)", text))
    os.kill(int(pids["tuner1"]), signal.SIGKILL)
    killed = time.time()
    proc.wait(timeout=30)
    assert time.time() - killed < 15
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  reader.join(timeout=5)
  text = "".join(lines)
  assert proc.returncode != 0 and "error: tuner1 was killed by SIGKILL" in text, text[-3000:]
  for pid in pids.values():  # the launcher stopped the chief and the other worker
    assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()
  assert not (tmp_path / "trials.csv").exists()

  resumed = launch_tuning(tmp_path)  # the same command: the chief reloads its oracle
  assert resumed.returncode == 0, resumed.stdout[-4000:]
  assert "[chief] tune: resuming the search" in resumed.stdout
  with open(tmp_path / "trials.csv") as f:
    rows = list(csv.DictReader(f))
  assert sorted(r["trial_id"] for r in rows) == ["0", "1"]  # the killed trial ran again
  assert all(r["status"] == "COMPLETED" for r in rows)


def test_trials_train_the_layers_after_a_fixed_front_end_with_the_suite_compile_options():
  import keras
  from common import training, tuning
  from common.heads import ClassifierHead

  def build(hp):
    return keras.Sequential([keras.Input((6,)), keras.layers.Rescaling(0.5, name="scale"),
                             keras.layers.Reshape((3, 2)),
                             keras.layers.LSTM(hp.Choice("units", [2, 4], default=4)),
                             keras.layers.Dense(2, activation="softmax")])

  head = ClassifierHead(("a", "b"))
  settings = {"learning_rate": 0.01, "batch_size": 8, "optimizer": "adam"}
  hypermodel = tuning.HyperModel(build, head, settings, batches=None, front_end=("scale",))
  model = hypermodel.build(tuning.hyperparameters())
  assert [layer.name for layer in model.layers][0] != "scale"  # only the core trains
  expected = training.compile_options(model)
  assert model.steps_per_execution == expected["steps_per_execution"]
  assert bool(model.jit_compile) == bool(expected["jit_compile"])
