"""Dataset registry, IDX files, bundled samples, offline `auto`."""
import gzip
import os
import shutil
import time

import numpy as np
import pytest

from common import datasets
from common.datasets import idx, images, tfds_source
from common.errors import UserError


def write_idx(path, array, compress=False):
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  data = header + array.astype(np.uint8).tobytes()
  with (gzip.open if compress else open)(path, "wb") as f:
    f.write(data)


def write_mnist_dir(folder, n_train=30, n_test=10, compress=True, seed=0):
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  suffix = ".gz" if compress else ""
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"),
              rng.integers(0, 256, (n, 28, 28)), compress)
    write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"),
              np.arange(n) % 10, compress)
  return folder


@pytest.mark.parametrize("compress", [True, False])
def test_files_source_reads_idx_gzipped_or_not(tmp_path, compress):
  folder = write_mnist_dir(str(tmp_path / "d"), compress=compress)
  splits = datasets.load("mnist", source="files", data_dir=folder, validation_split=0.2)
  assert splits.sizes == {"train": 24, "validation": 6, "test": 10}
  x, y = next(iter(splits.train.batch(100)))
  assert x.shape[1:] == (28, 28, 1) and x.dtype.name == "uint8" and y.dtype.name == "int64"


def test_corrupt_and_truncated_idx_files_are_named(tmp_path):
  folder = write_mnist_dir(str(tmp_path / "d"), compress=False)
  path = os.path.join(folder, "train-images-idx3-ubyte")
  with open(path, "r+b") as f:
    f.truncate(100)
  with pytest.raises(UserError, match="truncated or corrupt"):
    datasets.load("mnist", source="files", data_dir=folder)
  with open(path, "wb") as f:
    f.write(b"not an idx file at all")
  with pytest.raises(UserError, match="not an IDX file"):
    datasets.load("mnist", source="files", data_dir=folder)


def test_missing_files_say_what_is_needed(tmp_path):
  with pytest.raises(UserError, match="not a folder"):
    datasets.load("mnist", source="files", data_dir=str(tmp_path / "nowhere"))
  os.makedirs(tmp_path / "empty")
  with pytest.raises(UserError, match="train-images-idx3-ubyte"):
    datasets.load("mnist", source="files", data_dir=str(tmp_path / "empty"))


def test_bundled_mnist_is_real_balanced_and_split_deterministically():
  splits = datasets.load("mnist", source="bundled", validation_split=0.1)
  assert splits.sizes == {"train": 3600, "validation": 400, "test": 1000}
  again = datasets.load("mnist", source="bundled", validation_split=0.1)
  np.testing.assert_array_equal(splits.arrays.train[1], again.arrays.train[1])
  # the test split never depends on the seed, the train/validation order does
  other = datasets.load("mnist", source="bundled", seed=7)
  np.testing.assert_array_equal(splits.arrays.test[1], other.arrays.test[1])
  assert not np.array_equal(splits.arrays.train[1], other.arrays.train[1])
  counts = np.bincount(splits.arrays.test[1], minlength=10)
  assert counts.min() > 60  # every digit is represented
  assert splits.arrays.train[0].max() == 255 and splits.arrays.train[0].mean() > 20


def test_subsets_take_the_requested_sizes():
  splits = datasets.load("fashion_mnist", source="bundled", train_size=200, test_size=50,
                         validation_split=0.25)
  assert splits.sizes == {"train": 150, "validation": 50, "test": 50}
  assert splits.spec.class_names[9] == "Ankle boot"


def test_bundled_checksum_mismatch_is_caught(tmp_path, monkeypatch):
  shutil.copy(os.path.join(images.DATA_DIR, "mnist_5k.npz"), tmp_path / "mnist_5k.npz")
  with open(tmp_path / "mnist_5k.npz", "r+b") as f:
    f.seek(1000)
    f.write(b"\x00\x01\x02")
  monkeypatch.setattr(images, "DATA_DIR", str(tmp_path))
  with pytest.raises(UserError, match="corrupt"):
    datasets.load("mnist", source="bundled")


def test_auto_falls_back_to_bundled_quickly_when_offline(tmp_path):
  start = time.perf_counter()
  source = datasets.resolve_source(datasets.get("mnist"), "auto", str(tmp_path))
  assert source == "bundled"
  assert time.perf_counter() - start < 10


def test_probe_answers_quickly_when_the_host_refuses(monkeypatch):
  monkeypatch.setenv("EXAMPLES_PROBE_ADDRESS", "127.0.0.1:9")
  start = time.perf_counter()
  assert tfds_source.download_reachable(timeout=0.5) is False
  assert time.perf_counter() - start < 2


def test_probe_is_bounded_when_name_resolution_hangs(monkeypatch):
  import socket

  def hangs(*args, **kwargs):  # as a resolver that never answers, then gives up
    time.sleep(30)
    raise OSError("name resolution timed out")
  monkeypatch.setattr(socket, "create_connection", hangs)
  start = time.perf_counter()
  assert tfds_source.download_reachable(timeout=0.5) is False
  assert time.perf_counter() - start < 2


def test_explicit_source_that_does_not_exist_is_refused():
  spec = datasets.DatasetSpec(name="toy", class_names=("a", "b"))
  with pytest.raises(UserError, match="no bundled source"):
    datasets.resolve_source(spec, "bundled")
  with pytest.raises(UserError, match="no offline copy"):
    datasets.resolve_source(spec, "auto")


def test_unknown_dataset_lists_known_ones():
  with pytest.raises(UserError, match="fashion_mnist"):
    datasets.get("nope")
