"""Reads IDX files (the MNIST file format), gzipped or not, with clear errors."""
import gzip
import os

import numpy as np

from common.errors import UserError

_UBYTE = 0x08


def read_idx(path):
  """Returns the uint8 array stored in an IDX file (`.gz` or plain)."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise UserError(f"cannot read {path}: {e}; re-download the file") from e
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE:
    raise UserError(f"{path} is not an IDX file of unsigned bytes (bad magic number); "
                    "point --data_dir at the MNIST-format files")
  ndim = data[3]
  header = 4 + 4 * ndim
  shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  expected = header + int(np.prod(shape))
  if len(data) != expected:
    raise UserError(f"{path} is truncated or corrupt: {len(data)} bytes where its header "
                    f"promises {expected}; re-download the file")
  return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def find(data_dir, stem):
  """Path of `stem` or `stem.gz` in data_dir (also the `stem` with '-' for '.')."""
  candidates = [stem, stem + ".gz", stem.replace("-idx", ".idx"),
                stem.replace("-idx", ".idx") + ".gz"]
  for name in candidates:
    path = os.path.join(data_dir, name)
    if os.path.exists(path):
      return path
  raise UserError(f"{os.path.join(data_dir, stem)}[.gz] not found; --data_dir must hold "
                  "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
                  "and t10k-labels-idx1-ubyte (gzipped or not)")


def read_mnist_dir(data_dir):
  """(train_images, train_labels), (test_images, test_labels) from an MNIST-style folder."""
  if not os.path.isdir(data_dir):
    raise UserError(f"--data_dir {data_dir} is not a folder")
  out = []
  for prefix in ("train", "t10k"):
    images = read_idx(find(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find(data_dir, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
      raise UserError(f"{data_dir}: {prefix} images {images.shape} and labels {labels.shape} "
                      "do not match; the files are from different datasets or corrupt")
    out.append((images, labels))
  return out
