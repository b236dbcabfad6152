"""Writes data/samples/seven.png and data/samples/two.png, the images the README predicts on.

They are the first 7 and the first 2 of the bundled MNIST sample's TEST split
(data/mnist_5k.npz, split as common/datasets/images.py splits it), so a model
trained by `make run-mnist` on that sample has never seen them. They are
inverted to dark-on-light and enlarged to 112x112, like a digit a user
photographs or draws, to exercise the predict path's cropping and scaling.

    python scripts/make_sample_images.py
"""
import os

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  data = np.load(os.path.join(ROOT, "data", "mnist_5k.npz"))
  images, labels = data["images"], data["labels"]
  order = np.random.default_rng(0).permutation(len(labels))
  test = order[int(len(labels) * 0.8):]
  out_dir = os.path.join(ROOT, "data", "samples")
  os.makedirs(out_dir, exist_ok=True)
  for digit, name in ((7, "seven"), (2, "two")):
    index = next(i for i in test if labels[i] == digit)
    image = Image.fromarray(255 - images[index]).resize((112, 112), Image.BILINEAR)
    path = os.path.join(out_dir, f"{name}.png")
    image.save(path, optimize=True)
    print(f"{path}: bundled MNIST index {index}, label {digit}")


if __name__ == "__main__":
  main()
