"""The CIFAR CNN: the PyTorch parameter count, the data readers, tiny runs, clean failures."""
import json
import os
import pickle
import struct

from absl import flags
import numpy as np
import pytest
from PIL import Image

from common import datasets
from common.datasets import cifar
from common.errors import UserError
from common.heads import ClassifierHead
from examples import cifar_cnn
from tests.conftest import assert_user_error, cli


@pytest.mark.parametrize("variant", ["document", "augmented"])
def test_parameter_count_equals_the_pytorch_original(variant):
  model = cifar_cnn.build_model(variant, ClassifierHead(cifar.CLASS_NAMES), "cifar10")
  assert model.count_params() == 545_098 == cifar_cnn.PYTORCH_PARAMETERS
  per_layer = {layer.name: layer.count_params() for layer in model.layers
               if layer.count_params()}
  assert per_layer == {"conv1": 896, "conv2": 18_496, "fc1": 524_416, "probabilities": 1_290}
  assert model.get_layer("fc1").input.shape[-1] == 64 * 8 * 8
  assert model.output_shape == (None, 10)


def tiny_images(n, seed):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
          (np.arange(n) % 10).astype(np.int64))


def write_bin_batches(folder, per_batch=4):
  """Tiny files in the CIFAR-10 binary layout; returns the expected test arrays."""
  os.makedirs(folder, exist_ok=True)
  for i, name in enumerate(list(cifar.TRAIN_BATCHES) + [cifar.TEST_BATCH]):
    images, labels = tiny_images(per_batch, seed=i)
    planes = images.transpose(0, 3, 1, 2).reshape(per_batch, -1)  # R, G, B planes
    records = np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1)
    records.tofile(os.path.join(folder, name + ".bin"))
  return images, labels


def test_binary_version_is_read_channels_last(tmp_path):
  images, labels = write_bin_batches(tmp_path / "cifar-10-batches-bin")
  splits = datasets.load("cifar10", source="files", data_dir=str(tmp_path), validation_split=0)
  assert splits.sizes == {"train": 20, "validation": 0, "test": 4}
  x_test, y_test = splits.arrays.test
  assert x_test.shape == (4, 32, 32, 3) and x_test.dtype == np.uint8
  assert np.array_equal(x_test, images) and np.array_equal(y_test, labels)


class Py2Pickler(pickle._Pickler):
  """Writes str and bytes as Python 2 `str` (BINSTRING), as the CIFAR python batches do."""

  def save_py2_str(self, obj):
    raw = obj.encode("latin1") if isinstance(obj, str) else obj
    if len(raw) < 256:
      self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
    else:
      self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
    self.memoize(obj)

  dispatch = {**pickle._Pickler.dispatch, bytes: save_py2_str, str: save_py2_str}


def write_py_batches(folder, per_batch=4):
  """Tiny batches in the layout of the python version (Python 2 pickles of dicts)."""
  os.makedirs(folder, exist_ok=True)
  for i, name in enumerate(list(cifar.TRAIN_BATCHES) + [cifar.TEST_BATCH]):
    images, labels = tiny_images(per_batch, seed=i)
    batch = {"batch_label": "tiny", "labels": labels.tolist(),
             "data": images.transpose(0, 3, 1, 2).reshape(per_batch, -1),
             "filenames": ["x.png"] * per_batch}
    with open(os.path.join(folder, name), "wb") as f:
      Py2Pickler(f, protocol=2).dump(batch)
  return images, labels


class _RunsCode:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_python_version_loads_arrays_only_and_refuses_code(tmp_path):
  folder = tmp_path / "cifar-10-batches-py"
  images, labels = write_py_batches(folder)
  arrays = cifar.read_cifar_dir(str(tmp_path))
  assert np.array_equal(arrays.test[0], images) and np.array_equal(arrays.test[1], labels)
  assert arrays.train[0].shape == (20, 32, 32, 3)

  marker = tmp_path / "pwned"
  with open(folder / "test_batch", "wb") as f:
    pickle.dump({"data": _RunsCode(marker), "labels": []}, f, protocol=4)
  with pytest.raises(UserError, match=r"refusing to load (posix|os|nt)\.system.*binary version"):
    cifar.read_cifar_dir(str(tmp_path))
  assert not marker.exists()


def test_bad_files_name_the_problem(tmp_path):
  with pytest.raises(UserError, match="holds no CIFAR-10 batches"):
    cifar.read_cifar_dir(str(tmp_path))
  folder = tmp_path / "cifar-10-batches-bin"
  write_bin_batches(folder)
  os.remove(folder / "data_batch_3.bin")
  with pytest.raises(UserError, match="lacks data_batch_3.bin"):
    cifar.read_cifar_dir(str(tmp_path))
  (folder / "data_batch_3.bin").write_bytes(b"\x00" * 100)
  with pytest.raises(UserError, match="not a multiple of the 3073-byte record"):
    cifar.read_cifar_dir(str(tmp_path))


def make_flags(*argv):
  fv = flags.FlagValues()
  cifar_cnn.define_flags(fv)
  fv(["prog", *argv])
  return fv


@pytest.fixture(scope="module")
def tiny_splits():
  spec = datasets.get("cifar10")
  arrays = datasets.ArraySplits(train=tiny_images(80, seed=1), test=tiny_images(20, seed=2))
  return datasets.from_arrays(spec, arrays, source="bundled", seed=0, validation_split=0.2)


@pytest.mark.parametrize("variant", ["document", "augmented"])
def test_tiny_run_writes_results_and_a_model_that_predicts(tmp_path, tiny_splits, variant):
  stats = cifar_cnn.run(make_flags(f"--variant={variant}", "--epochs=1", "--strategy=cpu",
                                   f"--output_dir={tmp_path}"), datasets_override=tiny_splits)
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["parameters"] == 545_098 and saved["sizes"]["test"] == 20
  assert saved["settings"]["schedule"] == ("cosine" if variant == "augmented" else "constant")
  assert stats["test"] == saved["test"]
  image = tmp_path / "photo.png"
  Image.fromarray(tiny_images(1, seed=3)[0][0]).resize((50, 40)).save(image)
  out = cifar_cnn.run(make_flags("--mode=predict", f"--model={tmp_path}/model.keras",
                                 f"--images={image}"))
  assert out["predictions"][0]["class"] in cifar.CLASS_NAMES


def test_offline_without_files_says_how_to_get_the_data(tmp_path):
  proc = cli("cifar_cnn.py", f"--output_dir={tmp_path}",
             env={"TFDS_DATA_DIR": str(tmp_path / "no_tfds")})
  assert_user_error(proc, "cifar-10-binary.tar.gz", "--data_source=files")
  assert proc.returncode == 2


# ## Tune with keras-tuner


@pytest.mark.parametrize("variant,optimizer", [("document", "SGD"), ("augmented", "Adam")])
def test_default_hyperparameters_rebuild_the_pytorch_model(variant, optimizer):
  from common import tuning
  head = ClassifierHead(cifar.CLASS_NAMES)
  hypermodel = tuning.HyperModel(lambda hp: cifar_cnn.build_model(variant, head, "cifar10", hp),
                                 head, cifar_cnn.VARIANTS[variant], batches=None)
  model = hypermodel.build(tuning.hyperparameters())
  assert model.count_params() == 545_098 == cifar_cnn.PYTORCH_PARAMETERS
  assert not any(type(layer).__name__ == "Dropout" for layer in model.layers)
  assert type(model.optimizer).__name__ == optimizer
  assert float(model.optimizer.learning_rate) == pytest.approx(0.001)


@pytest.mark.parametrize("variant", ["document", "augmented"])
def test_tune_writes_best_hparams_and_retrains_them(tmp_path, tiny_splits, variant,
                                                   monkeypatch):
  schedules = []
  real = cifar_cnn.make_learning_rate
  monkeypatch.setattr(cifar_cnn, "make_learning_rate",
                      lambda settings, n: schedules.append(dict(settings)) or real(settings, n))
  stats = cifar_cnn.run(make_flags(f"--variant={variant}", "--mode=tune", "--max_trials=2",
                                   "--tune_epochs=1", "--strategy=cpu",
                                   f"--output_dir={tmp_path}"), datasets_override=tiny_splits)
  assert stats["trials"] == 2 and 0 <= stats["default_score"] <= 1
  best = json.loads((tmp_path / "best_hparams.json").read_text())
  assert set(best) == {"filters_1", "filters_2", "units", "dropout", "learning_rate",
                       "batch_size"} and best == stats["best_hparams"]
  assert len((tmp_path / "trials.csv").read_text().strip().splitlines()) == 1 + 2
  # every model built (keras-tuner's first check, 2 trials, the default's score) gets the
  # learning rate for its own epochs and batch size: a cosine decay over them in `augmented`
  assert len(schedules) >= 3 and all(s["epochs"] == 1 for s in schedules)
  assert {s["batch_size"] for s in schedules} <= {16, 32, 64, 128}
  assert schedules[-1]["batch_size"] == cifar_cnn.VARIANTS[variant]["batch_size"]

  out = tmp_path / "retrain"
  result = cifar_cnn.run(make_flags(f"--variant={variant}", "--epochs=1", "--strategy=cpu",
                                    f"--hparams={tmp_path}/best_hparams.json",
                                    f"--output_dir={out}"), datasets_override=tiny_splits)
  settings = result["settings"]
  assert settings["hparams"] == best and settings["batch_size"] == best["batch_size"]
  assert settings["learning_rate"] == pytest.approx(best["learning_rate"])
  f1, f2, units = best["filters_1"], best["filters_2"], best["units"]
  assert result["parameters"] == ((27 * f1 + f1) + (9 * f1 * f2 + f2)
                                  + (64 * f2 * units + units) + (units * 10 + 10))
