"""User images -> the training format (uint8, HxWxC), one code path for every image model."""
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common.errors import UserError


def read_image(path):
  try:
    with Image.open(path) as image:
      image.load()
      return image
  except FileNotFoundError as e:
    raise UserError(f"image {path} not found") from e
  except (UnidentifiedImageError, OSError) as e:
    raise UserError(f"{path} is not a readable image (PNG or JPEG expected)") from e


def to_digit_format(image, size=28, margin=4):
  """A grey image like MNIST's: light strokes on black, object centred in `size` pixels.

  Dark-on-light images (ink on paper) are inverted, judged by the border pixels;
  the object is cropped to its bounding box, scaled to fit `size - 2*margin` with
  its aspect ratio kept, and centred. margin=0 suits Fashion-MNIST-like images.
  """
  grey = np.asarray(ImageOps.exif_transpose(image).convert("L"), dtype=np.float32)
  border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
  if np.median(border) > 127:
    grey = 255.0 - grey
  grey -= np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
  grey = np.clip(grey, 0, 255)
  if grey.max() <= 0:
    raise UserError("image is blank (a single colour); nothing to classify")
  rows = np.flatnonzero(grey.max(axis=1) > 0.2 * grey.max())
  cols = np.flatnonzero(grey.max(axis=0) > 0.2 * grey.max())
  grey = grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
  grey *= 255.0 / grey.max()
  inner = size - 2 * margin
  h, w = grey.shape
  scale = inner / max(h, w)
  new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
  resized = Image.fromarray(grey.astype(np.uint8)).resize((new_w, new_h), Image.LANCZOS)
  canvas = np.zeros((size, size), dtype=np.uint8)
  top, left = (size - new_h) // 2, (size - new_w) // 2
  canvas[top:top + new_h, left:left + new_w] = np.asarray(resized)
  return canvas[..., None]
