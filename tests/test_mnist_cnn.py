"""The MNIST example end to end: in-process through run(), and as a user runs it."""
import json
import os
import signal
import time

import keras
import numpy as np
import pytest
from PIL import Image

from common import datasets
from examples import mnist_cnn
from common.errors import UserError
from tests.conftest import RESUME_TOLERANCE, assert_user_error, cli, start_cli

TINY = dict(train_size=300, test_size=100)


@pytest.fixture(scope="module")
def tiny_mnist():
  return datasets.load("mnist", source="bundled", validation_split=0.2, **TINY)


def train_tiny(fresh_flags, tmp_path, splits, *extra):
  fv = fresh_flags(mnist_cnn, "--epochs=1", f"--output_dir={tmp_path}", "--strategy=cpu",
                   *extra)
  return mnist_cnn.run(fv, datasets_override=splits)


def test_run_writes_results_model_and_plots(fresh_flags, tmp_path, tiny_mnist):
  stats = train_tiny(fresh_flags, tmp_path, tiny_mnist)
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["example"] == "mnist_cnn" and saved["variant"] == "document"
  assert saved["sizes"] == {"train": 240, "validation": 60, "test": 100}
  assert saved["epochs"] == 1 and saved["parameters"] == 225_034
  assert 0.0 <= saved["test"]["accuracy"] <= 1.0 and saved["test"]["loss"] > 0
  assert saved["timing"]["train_samples_per_s"] > 0
  assert np.sum(saved["confusion_matrix"]) == 100
  assert saved["versions"]["keras"] == keras.__version__
  assert saved["flags"]["epochs"] == 1
  for name in ("model.keras", "training_curves.png", "confusion_matrix.png",
               "training_log.csv", "checkpoints/best.keras", "checkpoints/last.keras"):
    assert (tmp_path / name).exists(), name
  assert os.listdir(tmp_path / "tensorboard")
  assert not (tmp_path / "backup").exists()  # a finished run leaves no backup behind
  assert stats["test"] == saved["test"]


def test_saved_model_reloads_in_safe_mode_and_predicts_the_same(fresh_flags, tmp_path,
                                                                 tiny_mnist):
  stats = train_tiny(fresh_flags, tmp_path, tiny_mnist)
  model = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
  x, y = tiny_mnist.arrays.test
  accuracy = np.mean(model.predict(x, verbose=0).argmax(-1) == y)
  assert accuracy == pytest.approx(stats["test"]["accuracy"], abs=1e-6)


def test_same_seed_gives_the_same_metrics(fresh_flags, tmp_path, tiny_mnist):
  a = train_tiny(fresh_flags, tmp_path / "a", tiny_mnist)
  b = train_tiny(fresh_flags, tmp_path / "b", tiny_mnist)
  assert a["test"] == b["test"]
  assert a["final"]["loss"] == b["final"]["loss"]


@pytest.mark.parametrize("variant,params", [("keras_tutorial", 93_322), ("mlp", 101_770)])
def test_other_variants_train(fresh_flags, tmp_path, tiny_mnist, variant, params):
  stats = train_tiny(fresh_flags, tmp_path, tiny_mnist, f"--variant={variant}")
  assert stats["parameters"] == params
  assert stats["settings"]["one_hot"] == (variant == "keras_tutorial")


def test_bundled_sample_learns_well_beyond_chance(fresh_flags, tmp_path):
  splits = datasets.load("mnist", source="bundled", train_size=1500, test_size=300)
  fv = fresh_flags(mnist_cnn, "--epochs=2", f"--output_dir={tmp_path}", "--strategy=cpu")
  assert mnist_cnn.run(fv, datasets_override=splits)["test"]["accuracy"] > 0.8


def digit_png(path, splits, index=0, dark_on_light=True, scale=5):
  """A real test digit, enlarged, as a user's scan would look."""
  x, y = splits.arrays.test
  image = Image.fromarray(x[index, :, :, 0]).resize((28 * scale, 28 * scale))
  if dark_on_light:
    image = Image.fromarray(255 - np.asarray(image)).convert("RGB")
  image.save(path)
  return int(y[index])


def test_command_line_train_then_predict(tmp_path, tiny_mnist):
  out = tmp_path / "run"
  proc = cli("mnist_cnn.py", "--epochs=2", "--train_size=1000", "--test_size=200",
             f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr
  assert "data: mnist from bundled" in proc.stderr  # offline: auto fell back
  assert "test accuracy" in proc.stdout
  paths = [str(tmp_path / f"d{i}.png") for i in range(3)]
  for i, path in enumerate(paths):
    digit_png(path, tiny_mnist, index=i, dark_on_light=i % 2 == 0)
  proc = cli("mnist_cnn.py", "--mode=predict", f"--model={out}/model.keras",
             f"--images={','.join(paths)}")
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 3
  for path, line in zip(paths, lines):
    assert line.startswith(path + ": ") and "probability" in line


def test_killed_run_resumes_from_its_backup_and_ends_as_an_uninterrupted_run(tmp_path):
  common = ["--epochs=6", "--train_size=2000", "--test_size=100", "--data_source=bundled"]
  args = [*common, f"--output_dir={tmp_path}"]
  proc = start_cli("mnist_cnn.py", *args)
  metadata = tmp_path / "backup" / "training_metadata.json"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 2:
      break
    time.sleep(0.05)
  assert proc.poll() is None, "training finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = json.loads(metadata.read_text())["epoch"]
  assert 2 <= killed_at < 6
  resumed = cli("mnist_cnn.py", *args)
  assert resumed.returncode == 0, resumed.stderr
  assert f"resuming from backup at epoch {killed_at} of 6" in resumed.stderr
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["epochs"] == 6 and saved["timing"]["resumed_from_epoch"] == killed_at
  assert saved["test"]["accuracy"] > 0.8
  assert not (tmp_path / "backup").exists()
  whole = cli("mnist_cnn.py", *common, f"--output_dir={tmp_path / 'whole'}")
  assert whole.returncode == 0, whole.stderr
  expected = json.loads((tmp_path / "whole" / "results.json").read_text())
  for split in ("test", "final"):
    assert saved[split] == pytest.approx(expected[split], rel=RESUME_TOLERANCE), split


def test_diverging_run_stops_with_one_clear_line(tmp_path):
  proc = cli("mnist_cnn.py", "--data_source=bundled", "--train_size=256", "--test_size=64",
             "--epochs=2", "--learning_rate=1e6", f"--output_dir={tmp_path}")
  assert_user_error(proc, "training diverged", "--learning_rate")
  assert proc.returncode == 2 and not (tmp_path / "results.json").exists()


def test_bad_input_on_the_command_line_is_one_clear_line(tmp_path, tiny_mnist):
  good_png = str(tmp_path / "ok.png")
  digit_png(good_png, tiny_mnist)
  proc = cli("mnist_cnn.py", "--mode=predict", f"--model={tmp_path}/missing.keras",
             f"--images={good_png}")
  assert_user_error(proc, "not found")
  assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()[-1]) < 300
  assert_user_error(cli("mnist_cnn.py", "--epochs=-3"), "--epochs must be a positive integer")


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, tiny_mnist):
  from absl import flags
  out = tmp_path_factory.mktemp("trained")
  fv = flags.FlagValues()
  mnist_cnn.define_flags(fv)
  fv(["prog", "--epochs=1", f"--output_dir={out}", "--strategy=cpu"])
  mnist_cnn.run(fv, datasets_override=tiny_mnist)
  return str(out / "model.keras")


def test_bad_inputs_name_the_problem(fresh_flags, tmp_path, tiny_mnist, trained_model):
  other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)], name="something_else")
  other.save(tmp_path / "other.keras")
  (tmp_path / "notes.png").write_text("plain text")
  (tmp_path / "fake.keras").write_text("not a zip")
  good_png = str(tmp_path / "ok.png")
  digit_png(good_png, tiny_mnist)
  cases = [
      (["--mode=predict", f"--model={tmp_path}/fake.keras", f"--images={good_png}"],
       "not a .keras model file"),
      (["--mode=predict", f"--model={tmp_path}/other.keras", f"--images={good_png}"],
       "not a mnist_cnn model"),
      (["--mode=predict", f"--model={trained_model}", f"--images={tmp_path}/notes.png"],
       "notes.png: .* is not a readable image"),
      (["--mode=predict", f"--model={trained_model}", f"--images={tmp_path}/gone.png"],
       "gone.png: image .* not found"),
      (["--data_source=files", f"--data_dir={tmp_path}/nowhere"], "not a folder"),
      (["--output_dir=/proc/forbidden", "--dry_run"], "cannot write to output dir"),
  ]
  for args, message in cases:
    with pytest.raises(UserError, match=message):
      mnist_cnn.run(fresh_flags(mnist_cnn, *args))


def test_predict_returns_one_prediction_per_file(trained_model, tmp_path, tiny_mnist, fresh_flags):
  paths = [str(tmp_path / f"p{i}.png") for i in range(2)]
  for i, path in enumerate(paths):
    digit_png(path, tiny_mnist, index=i, dark_on_light=bool(i))
  stats = mnist_cnn.run(fresh_flags(mnist_cnn, "--mode=predict", f"--model={trained_model}",
                                    f"--images={','.join(paths)}"))
  assert [p["file"] for p in stats["predictions"]] == paths
  assert all(0.0 < p["probability"] <= 1.0 for p in stats["predictions"])
