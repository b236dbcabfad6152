"""Datasets by name, each loadable from tfds, the user's files, or a bundled sample.

A dataset module registers a `DatasetSpec`; examples call `load(...)` and get
`Splits`: unbatched tf.data datasets of (features, label) plus their sizes and
the class names. Label order is the spec's `class_names`, defined once here.
"""
import dataclasses
import sys
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from common.datasets import tfds_source
from common.errors import UserError
from common.flags import DEFAULT_VALIDATION_SPLIT

_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class ArraySplits:
  """In-memory data as numpy arrays: what bundled samples and file readers return."""
  train: tuple
  test: tuple
  validation: Optional[tuple] = None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str
  class_names: tuple
  tfds_name: Optional[str] = None
  tfds_map: Optional[Callable] = None  # (features, label) -> (features, label) on tfds data
  load_bundled: Optional[Callable[[], ArraySplits]] = None
  load_files: Optional[Callable[[str], ArraySplits]] = None
  # tfds data read into memory by the dataset's own code (a split tfds lacks, e.g. by speaker);
  # None: the generic streaming path of tfds_source.load_splits
  load_tfds: Optional[Callable[[Optional[str]], ArraySplits]] = None
  files_help: str = ""  # what --data_dir must hold, for messages and --help
  offline_help: str = ""  # what to do when no source is available

  @property
  def num_classes(self):
    return len(self.class_names)


@dataclasses.dataclass
class Splits:
  train: tf.data.Dataset
  validation: Optional[tf.data.Dataset]
  test: tf.data.Dataset
  sizes: dict
  source: str
  spec: DatasetSpec
  arrays: Optional[ArraySplits] = None  # set when the data is in memory


def register(spec):
  _REGISTRY[spec.name] = spec
  return spec


def get(name):
  if name not in _REGISTRY:
    raise UserError(f"unknown dataset {name!r}; known: {', '.join(sorted(_REGISTRY))}")
  return _REGISTRY[name]


def names():
  return sorted(_REGISTRY)


def resolve_source(spec, requested, data_dir=None):
  """Picks the data source; `auto` decides within seconds, offline too."""
  if requested != "auto":
    available = {"tfds": spec.tfds_name, "files": spec.load_files, "bundled": spec.load_bundled}
    if not available[requested]:
      raise UserError(f"dataset {spec.name!r} has no {requested} source; "
                      f"use --data_source={'|'.join(k for k, v in available.items() if v)}")
    return requested
  if spec.tfds_name and tfds_source.is_prepared(spec.tfds_name, data_dir):
    return "tfds"
  if spec.tfds_name and tfds_source.download_reachable():
    return "tfds"
  if spec.load_bundled:
    return "bundled"
  raise UserError(f"no offline copy of {spec.name!r} and its download host cannot be reached. "
                  f"{spec.offline_help}")


def load(name, *, source="auto", data_dir=None, seed=42, train_size=None, test_size=None,
         validation_split=0.1):
  """Loads a dataset and prints one line saying which source and how many examples.

  validation_split=None means the suite's default fraction.
  """
  if validation_split is None:
    validation_split = DEFAULT_VALIDATION_SPLIT
  spec = get(name)
  chosen = resolve_source(spec, source, data_dir)
  if chosen == "tfds" and not spec.load_tfds:
    splits = tfds_source.load_splits(spec, data_dir, train_size, test_size, validation_split)
  else:
    loaders = {"tfds": spec.load_tfds, "files": spec.load_files}
    arrays = spec.load_bundled() if chosen == "bundled" else loaders[chosen](data_dir)
    splits = from_arrays(spec, arrays, source=chosen, seed=seed, train_size=train_size,
                         test_size=test_size, validation_split=validation_split)
  sizes = splits.sizes
  print(f"data: {name} from {chosen}: {sizes['train']} train, {sizes['validation']} validation, "
        f"{sizes['test']} test examples", file=sys.stderr)
  return splits


def subset(arrays_xy, size):
  x, y = arrays_xy
  return (x[:size], y[:size]) if size else (x, y)


def from_arrays(spec, arrays, *, source, seed, train_size=None, test_size=None,
                validation_split=0.1):
  """Splits in-memory arrays deterministically and wraps them as tf.data datasets.

  The training arrays are shuffled once with `seed`, then the subset is taken and
  the validation examples are carved from its front, so a given seed and sizes
  always give the same examples.
  """
  x, y = arrays.train
  order = np.random.default_rng(seed).permutation(len(y))
  x, y = subset((x[order], y[order]), train_size)
  if arrays.validation is not None:
    val = arrays.validation
    train = (x, y)
  else:
    n_val = int(round(len(y) * validation_split))
    val = (x[:n_val], y[:n_val]) if n_val else None
    train = (x[n_val:], y[n_val:])
  test = subset(arrays.test, test_size)
  if len(train[1]) == 0 or len(test[1]) == 0:
    raise UserError(f"dataset {spec.name!r} from {source} left no training or test examples; "
                    "raise --train_size/--test_size or lower --validation_split")
  kept = ArraySplits(train=train, test=test, validation=val)
  make = tf.data.Dataset.from_tensor_slices
  return Splits(
      train=make(train), validation=make(val) if val else None, test=make(test),
      sizes={"train": len(train[1]), "validation": len(val[1]) if val else 0,
             "test": len(test[1])},
      source=source, spec=spec, arrays=kept)
