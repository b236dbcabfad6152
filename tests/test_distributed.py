"""tf.distribute: mirrored replicas, multi-worker training through the launcher, and faults.

Every subprocess has a hard timeout; the multi-worker runs use 2 CPU workers on
127.0.0.1 and the bundled MNIST sample.
"""
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import training
from common.errors import UserError
from tests.conftest import OFFLINE_ENV, RESUME_TOLERANCE, ROOT

EXAMPLE = "examples/mnist_cnn.py"
TINY_MW = ["--data_source=bundled", "--train_size=512", "--test_size=200",
           "--validation_split=0.25", "--batch_size=32"]
TEST_ACCURACY = re.compile(r"^\[worker (\d)\] test accuracy (\S+)", re.M)
EPOCH_LINE = re.compile(r"^\[worker (\d)\] (Epoch \d+/\d+) - \S+ - (.*)$", re.M)


def python(*args, timeout, env=None):
  return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout, env={**os.environ, **OFFLINE_ENV, **(env or {})})


def launch(*args, workers=2, timeout=240):
  return python("scripts/launch_multiworker.py", f"--workers={workers}",
                f"--timeout={timeout - 20}", "--", EXAMPLE, *args, timeout=timeout)


def per_worker(pattern, text):
  found = {}
  for match in pattern.finditer(text):
    found.setdefault(int(match.group(1)), []).append(match.groups()[1:])
  return found


MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from absl import flags
    from common import datasets
    from examples import mnist_cnn
    splits = datasets.load("mnist", source="bundled", train_size=256, test_size=100,
                           validation_split=0.25)
    out = {}
    mirrored = lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for name, strategy, extra in [("one", tf.distribute.OneDeviceStrategy("/cpu:0"), []),
                                  ("mirrored", mirrored(), []),
                                  ("scaled", mirrored(), ["--scale_learning_rate"])]:
      fv = flags.FlagValues()
      mnist_cnn.define_flags(fv)
      fv(["prog", "--epochs=1", "--batch_size=32", f"--output_dir={sys.argv[1]}/{name}", *extra])
      stats = mnist_cnn.run(fv, datasets_override=splits, strategy_override=strategy)
      out[name] = {"replicas": strategy.num_replicas_in_sync, "final": stats["final"],
                   "test": stats["test"], "settings": stats["settings"]}
    print("RESULT " + json.dumps(out))
""")


def test_mirrored_over_two_logical_cpus_matches_one_device(tmp_path):
  proc = python("-c", MIRRORED, str(tmp_path), timeout=150)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.split("RESULT ", 1)[1])
  one, mirrored = result["one"], result["mirrored"]
  assert (one["replicas"], mirrored["replicas"]) == (1, 2)
  # --batch_size is global: 2 replicas x 16 take the same steps as 1 x 32
  assert mirrored["final"]["loss"] == pytest.approx(one["final"]["loss"], rel=1e-3)
  assert mirrored["test"]["accuracy"] == pytest.approx(one["test"]["accuracy"], abs=0.02)
  assert (tmp_path / "mirrored" / "results.json").exists()
  assert mirrored["settings"]["learning_rate"] == 0.001  # not scaled unless asked
  assert "base_learning_rate" not in mirrored["settings"]

  # --scale_learning_rate: 0.001 x 2 replicas, logged, recorded, and what the optimizer used
  scaled = result["scaled"]["settings"]
  assert (scaled["learning_rate"], scaled["base_learning_rate"],
          scaled["learning_rate_scale"]) == (pytest.approx(0.002), 0.001, 2)
  assert "--scale_learning_rate: learning rate 0.001 x 2 replica(s) = 0.002" in proc.stderr
  saved = json.loads((tmp_path / "scaled" / "results.json").read_text())
  assert saved["settings"]["learning_rate"] == pytest.approx(0.002)
  assert saved["flags"]["scale_learning_rate"] is True
  model = keras.models.load_model(tmp_path / "scaled" / "model.keras", safe_mode=True)
  assert float(model.optimizer.learning_rate) == pytest.approx(0.002)
  assert result["scaled"]["final"]["loss"] != pytest.approx(mirrored["final"]["loss"], rel=1e-3)


def test_scale_learning_rate_is_opt_in_and_linear():
  from common import strategy as strategy_lib

  class FourReplicas:
    num_replicas_in_sync = 4

  assert strategy_lib.scale_learning_rate({"learning_rate": 0.01}, FourReplicas(), False) == {
      "learning_rate": 0.01}
  scaled = strategy_lib.scale_learning_rate({"learning_rate": 0.01}, FourReplicas(), True)
  assert scaled == {"learning_rate": pytest.approx(0.04), "base_learning_rate": 0.01,
                    "learning_rate_scale": 4}


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
  """An uninterrupted 2-epoch run of 2 local workers: (launcher process, output dir)."""
  out = tmp_path_factory.mktemp("two_workers")
  return launch(*TINY_MW, "--epochs=2", f"--output_dir={out}"), out


def test_two_local_workers_train_and_agree(two_workers):
  proc, tmp_path = two_workers
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
  assert "all 2 worker(s) finished" in proc.stdout
  accuracies = per_worker(TEST_ACCURACY, proc.stdout)
  epochs = per_worker(EPOCH_LINE, proc.stdout)
  assert sorted(accuracies) == [0, 1] and accuracies[0] == accuracies[1]
  assert epochs[0] == epochs[1] and len(epochs[0]) == 2  # same loss/accuracy on both workers
  saved = json.loads((tmp_path / "results.json").read_text())  # only the chief writes here
  assert saved["sizes"] == {"train": 384, "validation": 128, "test": 200}
  assert f"{saved['test']['accuracy']:.4f}" == accuracies[0][0][0]
  assert saved["settings"]["batch_size"] == 32
  assert math.isfinite(saved["final"]["val_loss"]) and saved["test"]["accuracy"] > 0.3
  for name in ("model.keras", "training_log.csv", "checkpoints/best.keras",
               "checkpoints/last.keras"):
    assert (tmp_path / name).exists(), name
  assert not (tmp_path / "backup").exists()
  reloaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
  assert reloaded.name == "mnist_cnn_document__mnist"


def test_killed_worker_fails_fast_and_restart_resumes(tmp_path, two_workers):
  args = [sys.executable, "scripts/launch_multiworker.py", "--workers=2", "--timeout=200", "--",
          EXAMPLE, *TINY_MW, "--epochs=2", f"--output_dir={tmp_path}"]
  proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, **OFFLINE_ENV})
  lines = []
  reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
  reader.start()
  metadata = tmp_path / "backup" / "training_metadata.json"
  deadline = time.time() + 150
  try:
    while time.time() < deadline and proc.poll() is None and not metadata.exists():
      time.sleep(0.05)
    assert metadata.exists(), "".join(lines)[-3000:]
    pid = int(re.search(r"worker 1 is pid (\d+)", "".join(lines)).group(1))
    os.kill(pid, signal.SIGKILL)
    killed = time.time()
    proc.wait(timeout=30)
    assert time.time() - killed < 20  # the launcher's watchdog, not a collective timeout
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  reader.join(timeout=5)
  text = "".join(lines)
  assert proc.returncode != 0
  assert "error: worker 1 was killed by SIGKILL" in text, text[-3000:]
  assert json.loads(metadata.read_text())["epoch"] == 1
  assert not (tmp_path / "results.json").exists()

  resumed = launch(*TINY_MW, "--epochs=2", f"--output_dir={tmp_path}")
  assert resumed.returncode == 0, resumed.stdout[-4000:]
  assert "[worker 0] train: resuming from backup at epoch 1 of 2" in resumed.stdout
  assert "[worker 1] train: resuming from backup at epoch 1 of 2" in resumed.stdout
  epochs = per_worker(EPOCH_LINE, resumed.stdout)
  assert epochs[0] == epochs[1] and [e[0] for e in epochs[0]] == ["Epoch 2/2"]
  accuracies = per_worker(TEST_ACCURACY, resumed.stdout)
  assert accuracies[0] == accuracies[1]
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["epochs"] == 2 and saved["timing"]["resumed_from_epoch"] == 1
  assert [row["epoch"] for row in training.read_log(tmp_path / "training_log.csv")] == [0, 1]

  # The same command run without a kill (same seed) ends with the same model: the resumed
  # run restores the weights and optimizer of epoch 1 and replays the input's shuffle order,
  # so epoch 2 sees the batches it would have seen. Stated tolerance: RESUME_TOLERANCE.
  assert "[worker 0] train: replayed the input order of 1 pass(es)" in resumed.stdout
  whole = json.loads((two_workers[1] / "results.json").read_text())
  logs = [training.read_log(d / "training_log.csv") for d in (tmp_path, two_workers[1])]
  for resumed_row, whole_row in zip(*logs):
    assert resumed_row == pytest.approx(whole_row, rel=RESUME_TOLERANCE)
  for split in ("test", "final"):
    assert saved[split] == pytest.approx(whole[split], rel=RESUME_TOLERANCE), split


def test_diverging_multi_worker_run_stops_with_a_clear_message(tmp_path):
  proc = launch("--data_source=bundled", "--train_size=256", "--test_size=64", "--epochs=2",
                "--learning_rate=1e6", f"--output_dir={tmp_path}", workers=1, timeout=120)
  assert proc.returncode == 2, proc.stdout[-3000:]
  assert "[worker 0] error: training diverged (loss became nan)" in proc.stdout
  assert "Traceback" not in proc.stdout
  assert not (tmp_path / "results.json").exists()


class _BlowUpAfterFirstEpoch(keras.callbacks.Callback):
  def on_epoch_end(self, epoch, logs=None):
    self.model.optimizer.learning_rate.assign(1e30)  # weights overflow to inf, loss to NaN


def test_diverging_run_keeps_its_last_good_checkpoint(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.random((256, 8)).astype("float32")
  y = (x.sum(1) > 4).astype("int64")
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
  model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dense(2, activation="softmax")])
  model.compile(training.make_optimizer("adam", 0.01), "sparse_categorical_crossentropy",
                metrics=["accuracy"])
  with pytest.raises(UserError) as raised:
    training.fit(model, ds, None, epochs=4, output_dir=str(tmp_path),
                 extra_callbacks=[_BlowUpAfterFirstEpoch()])
  message = str(raised.value)
  assert "training diverged" in message and "last good state (epoch 1)" in message
  assert training.resume_epoch(str(tmp_path)) == 1
  good = keras.models.load_model(tmp_path / "checkpoints" / "last.keras", safe_mode=True)
  assert all(np.isfinite(w).all() for w in good.get_weights())
  rows = training.read_log(str(tmp_path / "training_log.csv"))
  assert math.isfinite(rows[0]["loss"]) and not math.isfinite(rows[-1]["loss"])
