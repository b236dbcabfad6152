"""CIFAR-10: 32x32 colour images in 10 classes, from tfds or your own copy.

Features are uint8 images (32, 32, 3) (channels last), labels int64 class
indices; scaling happens inside the models. There is no bundled sample (the
repository carries no CIFAR images).

Your own copy (--data_source=files --data_dir=DIR), either version from
https://www.cs.toronto.edu/~kriz/cifar.html, extracted:

* the binary version (recommended), `cifar-10-batches-bin/`: data_batch_1.bin
  ... data_batch_5.bin and test_batch.bin, each a sequence of 3,073-byte
  records (1 label byte, then 1,024 red, 1,024 green and 1,024 blue bytes of a
  row-major 32x32 image). Read with NumPy only.
* the python version, `cifar-10-batches-py/`: data_batch_1 ... data_batch_5
  and test_batch, pickled dicts. These are read with a restricted unpickler
  that builds nothing but plain NumPy arrays, lists, dicts, numbers and
  strings: any other object in the file (the way a malicious pickle runs code)
  stops the load with an error. A plain pickle.load is never used.

DIR may be the batches folder itself or the folder that contains it.
"""
import io
import os
import pickle

import numpy as np
import tensorflow as tf

from common.datasets.registry import ArraySplits, DatasetSpec, register
from common.errors import UserError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")
IMAGE_SHAPE = (32, 32, 3)
PIXELS = 32 * 32 * 3
RECORD_BYTES = 1 + PIXELS
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
DOWNLOAD_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


def _to_images(flat):
  """(n, 3072) rows of R, G, B planes -> (n, 32, 32, 3) channels-last uint8."""
  return flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


# ## Binary version


def read_bin_batch(path):
  """(images (n, 32, 32, 3) uint8, labels (n,) int64) from one CIFAR-10 binary batch."""
  try:
    data = np.fromfile(path, dtype=np.uint8)
  except OSError as e:
    raise UserError(f"cannot read {path}: {e.strerror}") from e
  if data.size == 0 or data.size % RECORD_BYTES:
    raise UserError(f"{path} is not a CIFAR-10 binary batch: {data.size} bytes is not a "
                    f"multiple of the {RECORD_BYTES}-byte record; re-extract "
                    "cifar-10-binary.tar.gz")
  records = data.reshape(-1, RECORD_BYTES)
  labels = records[:, 0].astype(np.int64)
  if labels.max() >= len(CLASS_NAMES):
    raise UserError(f"{path} holds label {labels.max()}, CIFAR-10 has 0-9; is it CIFAR-100? "
                    "Use the CIFAR-10 binary version")
  return _to_images(records[:, 1:]), labels


# ## Python version, through a restricted unpickler


def _reconstruct():
  try:
    from numpy._core.multiarray import _reconstruct as fn  # NumPy 2
  except ImportError:  # NumPy 1
    from numpy.core.multiarray import _reconstruct as fn
  return fn


class _ArraysOnlyUnpickler(pickle.Unpickler):
  """Builds only what a NumPy array needs; refuses every other global."""

  ALLOWED = {
      ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
      ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
      ("numpy", "ndarray"): lambda: np.ndarray,
      ("numpy", "dtype"): lambda: np.dtype,
  }

  def find_class(self, module, name):
    if (module, name) in self.ALLOWED:
      return self.ALLOWED[(module, name)]()
    raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_py_batch(path):
  """(images, labels) from one pickled python-version batch, without running its code."""
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as e:
    raise UserError(f"cannot read {path}: {e.strerror}") from e
  try:
    batch = _ArraysOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
  except Exception as e:  # a damaged or hostile file can raise nearly anything here
    raise UserError(f"{path} is not a CIFAR-10 python batch ({e}); only NumPy arrays are "
                    "loaded from pickles. Use the binary version (cifar-10-batches-bin) "
                    f"from {DOWNLOAD_PAGE} instead") from e
  if not isinstance(batch, dict):
    raise UserError(f"{path} is not a CIFAR-10 python batch (no dict inside)")
  data = batch.get(b"data", batch.get("data"))
  labels = batch.get(b"labels", batch.get("labels"))
  if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
      or data.shape[1] != PIXELS or labels is None or len(labels) != len(data)):
    raise UserError(f"{path} is not a CIFAR-10 python batch: expected 'data' uint8 "
                    f"(n, {PIXELS}) and n 'labels'")
  labels = np.asarray(labels)
  if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(CLASS_NAMES):
    raise UserError(f"{path}: labels must be integers 0-9; is it CIFAR-100? Use CIFAR-10")
  return _to_images(data), labels.astype(np.int64)


# ## Finding the user's files


def _locate(data_dir):
  """(folder, reader, suffix) for the version found in or under data_dir."""
  if not os.path.isdir(data_dir):
    raise UserError(f"--data_dir {data_dir} is not a folder")
  for folder in (data_dir, os.path.join(data_dir, "cifar-10-batches-bin")):
    if os.path.exists(os.path.join(folder, TEST_BATCH + ".bin")):
      return folder, read_bin_batch, ".bin"
  for folder in (data_dir, os.path.join(data_dir, "cifar-10-batches-py")):
    if os.path.exists(os.path.join(folder, TEST_BATCH)):
      return folder, read_py_batch, ""
  raise UserError(f"{data_dir} holds no CIFAR-10 batches; {FILES_HELP}")


def read_cifar_dir(data_dir):
  folder, reader, suffix = _locate(data_dir)
  missing = [name + suffix for name in TRAIN_BATCHES + (TEST_BATCH,)
             if not os.path.exists(os.path.join(folder, name + suffix))]
  if missing:
    raise UserError(f"{folder} lacks {', '.join(missing)}; re-extract the CIFAR-10 archive")
  train = [reader(os.path.join(folder, name + suffix)) for name in TRAIN_BATCHES]
  test = reader(os.path.join(folder, TEST_BATCH + suffix))
  return ArraySplits(train=(np.concatenate([x for x, _ in train]),
                            np.concatenate([y for _, y in train])),
                     test=test)


def _tfds_map(image, label):
  return image, tf.cast(label, tf.int64)


FILES_HELP = ("--data_dir must hold the extracted CIFAR-10 binary version "
              "(cifar-10-batches-bin: data_batch_1.bin ... data_batch_5.bin, test_batch.bin) or "
              "python version (cifar-10-batches-py: data_batch_1 ... data_batch_5, test_batch), "
              f"from {DOWNLOAD_PAGE}")

CIFAR10 = register(DatasetSpec(
    name="cifar10", class_names=CLASS_NAMES, tfds_name="cifar10", tfds_map=_tfds_map,
    load_files=read_cifar_dir, files_help=FILES_HELP,
    offline_help=("With internet: --data_source=tfds downloads it (about 160 MB). Or download "
                  f"the binary version (cifar-10-binary.tar.gz) from {DOWNLOAD_PAGE}, extract "
                  "it and pass --data_source=files --data_dir=DIR/cifar-10-batches-bin.")))
