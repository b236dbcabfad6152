"""28x28 grey image datasets: MNIST and Fashion-MNIST.

Features are uint8 images (28, 28, 1), labels int64 class indices; scaling to
[0, 1] happens inside the models, so training and prediction share one path.
"""
import hashlib
import os

import numpy as np
import tensorflow as tf

from common.datasets import idx
from common.datasets.registry import ArraySplits, DatasetSpec, register
from common.errors import UserError

DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "data")
IMAGE_SHAPE = (28, 28, 1)

# sha256 of the bundled files, so a damaged checkout is caught instead of trained on.
BUNDLED = {
    "mnist": ("mnist_5k.npz", "246e0c30eeea57c8d0037d3f38c8e00651ec204cc61b8022563e9aeeb9d756f4"),
    "fashion_mnist": ("fashion_mnist_5k.npz",
                      "3a1cfdf6bea06f0268c4275fe67eca46624df8be08e0fe4505ca5ea5654e73ce"),
}
BUNDLED_TEST_FRACTION = 0.2


def verified_path(filename, sha256):
  path = os.path.normpath(os.path.join(DATA_DIR, filename))
  if not os.path.exists(path):
    raise UserError(f"bundled sample {path} is missing; restore it with `git checkout -- data/`")
  if sha256:
    with open(path, "rb") as f:
      digest = hashlib.sha256(f.read()).hexdigest()
    if digest != sha256:
      raise UserError(f"bundled sample {path} is corrupt (sha256 mismatch); "
                      "restore it with `git checkout -- data/`")
  return path


def _with_channel(images, labels):
  return images[..., None], labels.astype(np.int64)


def _bundled(name):
  def load():
    with np.load(verified_path(*BUNDLED[name]), allow_pickle=False) as data:
      images, labels = data["images"], data["labels"]
    # Fixed split of the sample (independent of --seed): the last 20% of a
    # seed-0 permutation is the test set.
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = int(len(labels) * BUNDLED_TEST_FRACTION)
    train, test = order[:-n_test], order[-n_test:]
    return ArraySplits(train=_with_channel(images[train], labels[train]),
                       test=_with_channel(images[test], labels[test]))
  return load


def _files(data_dir):
  (x_train, y_train), (x_test, y_test) = idx.read_mnist_dir(data_dir)
  if x_train.shape[1:] != IMAGE_SHAPE[:2]:
    raise UserError(f"{data_dir}: images are {x_train.shape[1:]}, expected 28x28")
  return ArraySplits(train=_with_channel(x_train, y_train), test=_with_channel(x_test, y_test))


def _tfds_map(image, label):
  return image, tf.cast(label, tf.int64)


FILES_HELP = ("MNIST-format IDX files: train-images-idx3-ubyte, train-labels-idx1-ubyte, "
              "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (gzipped or not)")

MNIST = register(DatasetSpec(
    name="mnist", class_names=tuple(str(d) for d in range(10)), tfds_name="mnist",
    tfds_map=_tfds_map, load_bundled=_bundled("mnist"), load_files=_files,
    files_help=FILES_HELP,
    offline_help="With internet: --data_source=tfds. Or --data_source=files --data_dir=DIR."))

FASHION_MNIST = register(DatasetSpec(
    name="fashion_mnist",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
    tfds_name="fashion_mnist", tfds_map=_tfds_map, load_bundled=_bundled("fashion_mnist"),
    load_files=_files, files_help=FILES_HELP,
    offline_help="Debian: apt-get install dataset-fashion-mnist, then --data_source=files "
                 "--data_dir=/usr/share/datasets/fashion-mnist."))
