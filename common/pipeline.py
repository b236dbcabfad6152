"""tf.data input pipelines: map, cache, shuffle, batch, prefetch."""
import sys

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def make(ds, *, batch_size, training, seed, encode=None, preprocess=None, cache=True,
         shuffle_buffer=10_000):
  """Batches an unbatched (features, label) dataset for fit/evaluate.

  `preprocess` runs once per example before the cache (deterministic work such
  as tokenising audio); `encode` maps labels to what the loss expects. Shuffle
  comes after the cache so every epoch sees a new order, seeded for repeatable
  runs. Nothing here needs the whole dataset in memory except the cache, which
  callers turn off for data larger than RAM.
  """
  if preprocess is not None:
    ds = ds.map(preprocess, num_parallel_calls=AUTOTUNE)
  if encode is not None:
    ds = ds.map(encode, num_parallel_calls=AUTOTUNE)
  if cache:
    ds = ds.cache()
  if training:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  return ds.batch(batch_size).prefetch(AUTOTUNE)


def replay_order(ds, passes, read=False):
  """Opens `passes` iterators over `ds` and drops them, so that a resumed run's next epoch
  sees the shuffle order an uninterrupted run would have used: tf.data draws a new shuffle
  seed for every iterator (reshuffle_each_iteration), from one seed, and a new process
  starts again from the first. `read`: also read every element (a tf.distribute dataset
  draws its seeds only once it is read)."""
  for _ in range(passes):
    if read:
      for _ in ds:
        pass
    else:
      iter(ds)
  print(f"train: replayed the input order of {passes} pass(es)", file=sys.stderr)
