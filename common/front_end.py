"""A model's fixed front-end, run once per example in the input pipeline instead of every epoch.

The text classifier's TextVectorization and the speech model's log-mel and
codebook layers learn nothing during training: they are fitted before it
(vocabulary, normalisation, k-means) and then give the same output for an
example every epoch. So training splits the model in two models that share its
layers: `front_end` runs in the tf.data pipeline once, before the cache, and
`core` (the layers that learn) trains on its output. Training `core` trains
the model; the model itself, front-end included, is what gets saved, so
model.keras still takes raw text or waveforms (keras.io's "vectorize in the
pipeline, export with the layer inside" recipe). It also lets XLA compile the
core where the front-end has ops XLA cannot compile (strings).
"""
import keras
import numpy as np
import tensorflow as tf


def split(model, names):
  """(front_end, core): `model`'s leading layers named in `names`, and the rest, as two
  Sequential models sharing `model`'s layers (and weights)."""
  k = 0
  while k < len(model.layers) and model.layers[k].name in names:
    k += 1
  if k == 0:
    raise ValueError(f"{model.name} does not start with any of {sorted(names)}")
  (inputs,) = model.inputs
  front_end = keras.Sequential([keras.Input(inputs.shape[1:], dtype=inputs.dtype),
                                *model.layers[:k]], name=f"{model.name}_front_end")
  features = front_end(inputs)  # symbolic: only the shape and dtype of what it gives
  core = keras.Sequential([keras.Input(features.shape[1:], dtype=features.dtype),
                           *model.layers[k:]], name=f"{model.name}_core")
  return front_end, core


def _batches(front_end, ds, batch_size):
  """(front_end(x), y) per batch of `ds`: vectorised ops are much cheaper on batches."""
  return ds.batch(batch_size).map(lambda x, y: (front_end(x, training=False), y),
                                  num_parallel_calls=tf.data.AUTOTUNE)


def features(front_end, ds, batch_size=256):
  """An unbatched (x, label) dataset as (front_end(x), label), in the same order and with
  the same length."""
  out = _batches(front_end, ds, batch_size).unbatch()
  n = ds.cardinality()
  # unbatch forgets the length; Keras' fit opens a different number of iterators per epoch
  # without it, so the shuffle order would differ (common/pipeline.py replay_order)
  return out.apply(tf.data.experimental.assert_cardinality(n)) if n >= 0 else out


def precompute(front_end, ds, batch_size=256):
  """`features(front_end, ds)` computed now and held in memory, as a dataset any number of
  pipelines can read without running the front-end again (a search's trials share it)."""
  xs, ys = [], []
  for x, y in _batches(front_end, ds, batch_size):
    xs.append(x.numpy())
    ys.append(y.numpy())
  if not xs:
    return features(front_end, ds)  # empty: nothing to hold
  return tf.data.Dataset.from_tensor_slices((np.concatenate(xs), np.concatenate(ys)))
