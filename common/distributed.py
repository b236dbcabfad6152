"""Multi-worker training with a custom loop, for MultiWorkerMirroredStrategy.

Keras 3's `model.fit` fails under `tf.distribute.MultiWorkerMirroredStrategy`
(seen with TF 2.21 / Keras 3.15, 2 CPU workers: `ValueError: Attempt to convert
a value (PerReplica:{...})` in the first step), while `MirroredStrategy` works.
`common.training.fit` therefore sends multi-worker models here: the same
strategy, the same compiled model (optimizer, loss, "accuracy"), and the same
outputs as `training.fit`:

  backup/           latest.weights.h5 + training_metadata.json (Keras'
                    BackupAndRestore layout): rerun the same command to resume
  checkpoints/      best.keras (by validation loss, else loss) and last.keras
  tensorboard/      epoch_loss / epoch_accuracy under train/ and validation/
  training_log.csv  one row per epoch, kept across resumes

How a step works: every replica runs the model on its slice of the global batch
under a GradientTape; the per-example loss is summed and divided by the number
of examples in the whole global batch (`tf.nn.compute_average_loss` with that
count, all-reduced, so a short last batch is weighted right); the Keras
optimizer's `apply_gradients` all-reduces (sums) the gradients across every
replica of every worker and updates the mirrored variables. Loss and accuracy
are summed across workers, so every worker logs the same numbers.

Only the chief (worker 0) writes into the output folder; the other workers
write the same files into a temporary folder that is deleted at the end. A
resumed run reads the backup on the chief and broadcasts its epoch and weights
to every worker, so the other workers need not see the chief's disk.

What "resume" means here: training restarts at the first batch of the epoch
that was interrupted, from the weights and optimizer state saved at the end of
the epoch before, and first passes over the input once per finished epoch
without training, so that tf.data's per-epoch reshuffle (seeded) gives the
resumed epoch the order an uninterrupted run would have used. With the same
seed the resumed run ends with the same metrics as an uninterrupted one
(tested: identical to 1e-6 on 2 CPU workers). Single-process `fit` (Keras'
BackupAndRestore, common.training.fit) resumes the same way, with the same
order replay (common.pipeline.replay_order).

Batch size: the datasets arrive batched with the GLOBAL batch size (--batch_size);
`experimental_distribute_dataset` splits each batch across the workers' replicas
(auto-shard policy DATA, as the data is in memory on every worker).
"""
import contextlib
import csv
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time

import keras
import tensorflow as tf

from common import checkpoints
from common import pipeline
from common import strategy as strategy_lib
from common.errors import UserError

SUM = tf.distribute.ReduceOp.SUM


def is_multi_worker(model):
  return isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)


def distribute(strategy, ds):
  """A batched dataset split across replicas and workers by data (each sees every file)."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return strategy.experimental_distribute_dataset(ds.with_options(options))


def _per_example_loss(model):
  loss = model.loss
  if isinstance(loss, keras.losses.Loss):
    return loss.call  # unreduced: one value per example
  if isinstance(loss, str) or callable(loss):
    return keras.losses.get(loss)
  raise UserError("multi-worker training needs a single loss passed to model.compile "
                  f"(got {type(loss).__name__})")


def _wants_accuracy(model):
  metrics = (model.get_compile_config() or {}).get("metrics") or []
  names = [m if isinstance(m, str) else getattr(m, "name", "") for m in tf.nest.flatten(metrics)]
  unsupported = [n for n in names if n not in ("accuracy", "acc")]
  if unsupported:
    print(f"train: multi-worker loop reports loss and accuracy only, not {unsupported}",
          file=sys.stderr)
  return len(names) > len(unsupported)


def _correct(y, pred):
  """Number of right predictions; labels sparse, one-hot, or 0/1 with one sigmoid output."""
  if pred.shape[-1] == 1:
    hits = tf.cast(pred > 0.5, tf.float32) == tf.cast(tf.reshape(y, tf.shape(pred)), tf.float32)
  elif y.shape.rank == pred.shape.rank and y.shape[-1] == pred.shape[-1]:
    hits = tf.argmax(y, -1) == tf.argmax(pred, -1)
  else:
    hits = tf.cast(tf.reshape(y, [-1]), tf.int64) == tf.argmax(pred, -1)
  return tf.reduce_sum(tf.cast(hits, tf.float32))


class _Steps:
  """The strategy-aware train and evaluation steps of one compiled model."""

  def __init__(self, model):
    self.model = model
    self.strategy = model.distribute_strategy
    self.loss_fn = _per_example_loss(model)

  def _sums(self, x, y, training):
    model = self.model
    pred = tf.cast(model(x, training=training), tf.float32)
    per_example = tf.reshape(self.loss_fn(y, pred), [-1])
    regularization = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
    return pred, per_example, tf.cast(regularization, tf.float32)

  def _train_replica(self, x, y):
    ctx = tf.distribute.get_replica_context()
    n_local = tf.shape(y, out_type=tf.int64)[0]
    global_n = ctx.all_reduce(SUM, n_local)  # examples in this step, all replicas of all workers
    n = tf.cast(n_local, tf.float32)
    model = self.model
    with tf.GradientTape() as tape:
      pred, per_example, regularization = self._sums(x, y, True)
      loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_n)
      loss += tf.nn.scale_regularization_loss(regularization)
      scaled = model.optimizer.scale_loss(loss)  # mixed precision: scaled, unscaled in apply
    grads = tape.gradient(scaled, model.trainable_variables)
    model.optimizer.apply_gradients(zip(grads, model.trainable_variables))  # all-reduces grads
    return (tf.reduce_sum(per_example) + regularization * n, _correct(y, pred), n)

  def _eval_replica(self, x, y):
    pred, per_example, regularization = self._sums(x, y, False)
    return (tf.reduce_sum(per_example) + regularization * tf.cast(tf.shape(y)[0], tf.float32),
            _correct(y, pred), tf.cast(tf.shape(y)[0], tf.float32))

  @tf.function
  def train_step(self, x, y):
    out = self.strategy.run(self._train_replica, args=(x, y))
    return [self.strategy.reduce(SUM, v, axis=None) for v in out]

  @tf.function
  def eval_step(self, x, y):
    out = self.strategy.run(self._eval_replica, args=(x, y))
    return [self.strategy.reduce(SUM, v, axis=None) for v in out]

  def run_epoch(self, dist_ds, training):
    step = self.train_step if training else self.eval_step
    totals = [0.0, 0.0, 0.0]
    for x, y in dist_ds:
      totals = [t + float(v) for t, v in zip(totals, step(x, y))]
    loss, correct, n = totals
    return (loss / n if n else float("nan")), (correct / n if n else float("nan"))


def _broadcast_from_chief(strategy, values):
  """The chief's (worker 0, replica 0) values on every worker: all-reduce with zeros elsewhere."""
  def replica(*vs):
    ctx = tf.distribute.get_replica_context()
    first = tf.cast(tf.equal(ctx.replica_id_in_sync_group, 0), tf.float64)
    return ctx.all_reduce(SUM, [tf.cast(v, tf.float64) * first for v in vs])

  @tf.function
  def run():
    return strategy.run(replica, args=tuple(values))
  return [strategy.experimental_local_results(v)[0] for v in tf.nest.flatten(run())]


def _sync_state(strategy, model, epoch):
  """Gives every worker the chief's resume epoch and, when resuming, its weights."""
  epoch = int(_broadcast_from_chief(strategy, [tf.constant(epoch, tf.int64)])[0])
  if epoch:
    variables = list(model.variables) + list(model.optimizer.variables)
    values = _broadcast_from_chief(strategy, [v.value for v in variables])
    for variable, value in zip(variables, values):
      variable.assign(tf.cast(value, variable.dtype))
  return epoch


# What a collective op raises when a peer worker died (heartbeats stopped), hung
# past EXAMPLES_COLLECTIVE_TIMEOUT_S, or the cluster was torn down.
LOST_PEER = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
             tf.errors.AbortedError, tf.errors.CancelledError)


def lost_peer(error, epoch, backup_dir):
  text = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message or str(error))
  dead = re.search(r"unhealthy[^\n]*\n\s*(\S+)", text)
  reason = (f"{dead.group(1)} stopped sending heartbeats" if dead
            else (text.strip().splitlines() or [""])[0])
  return UserError(f"multi-worker training stopped in epoch {epoch + 1}: another worker died or "
                   f"hung ({type(error).__name__}: {reason[:200]}); restart every worker with "
                   f"the same command to resume from the backup in {backup_dir}")


@contextlib.contextmanager
def _quiet_tf_info():
  """Hides TF's INFO line per collective op (the step log stays)."""
  logger = logging.getLogger("tensorflow")
  level = logger.level
  logger.setLevel(logging.WARNING)
  try:
    yield
  finally:
    logger.setLevel(level)


def _append_csv(path, epoch, logs):
  fresh = not os.path.exists(path) or os.path.getsize(path) == 0
  with open(path, "a", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["epoch", *sorted(logs)])
    if fresh:
      writer.writeheader()
    writer.writerow({"epoch": epoch, **logs})


def fit(model, train_ds, val_ds, *, epochs, output_dir, early_stopping=False, patience=3,
        extra_callbacks=(), export_model=None):
  """training.fit for a model compiled under MultiWorkerMirroredStrategy.

  Returns (history_rows, timer, resumed_from) like training.fit; every worker
  returns the same rows. Epoch-level hooks of `extra_callbacks` (and early
  stopping) run on every worker with the same logs; batch-level hooks do not run.
  Raises UserError if training diverges; the last good checkpoint and backup are kept.
  """
  from common import training  # training imports this module

  strategy = model.distribute_strategy
  chief = strategy_lib.is_chief()
  work_dir = output_dir if chief else tempfile.mkdtemp(prefix="worker_scratch_")
  os.makedirs(work_dir, exist_ok=True)
  monitor = "val_loss" if val_ds is not None else "loss"
  # between epochs: every worker must be at the same step, so no background writes here
  saver = checkpoints.EpochCheckpoints(work_dir, monitor, export_model, background=False)
  backup = saver.backup
  csv_path = os.path.join(work_dir, "training_log.csv")
  with strategy.scope():
    if not model.optimizer.built:
      model.optimizer.build(model.trainable_variables)  # its variables exist before any step

  local_epoch = backup.epoch() if chief else 0
  if local_epoch:
    backup.restore(model)
  resumed_from = _sync_state(strategy, model, local_epoch)
  if resumed_from:
    print(f"train: resuming from backup at epoch {resumed_from} of {epochs} "
          "(the interrupted epoch restarts from its first batch)", file=sys.stderr)
  elif os.path.exists(csv_path):
    os.remove(csv_path)  # a fresh run: do not append to an old run's log

  steps = _Steps(model)
  train_dist = distribute(strategy, train_ds)
  if resumed_from:
    with _quiet_tf_info():
      pipeline.replay_order(train_dist, resumed_from, read=True)  # one pass per epoch
  val_dist = distribute(strategy, val_ds) if val_ds is not None else None
  accuracy_logged = _wants_accuracy(model)
  writers = {k: tf.summary.create_file_writer(os.path.join(work_dir, "tensorboard", k))
             for k in ("train", "validation")}
  callbacks = [saver, *extra_callbacks]  # the backup and checkpoints first, as training.fit
  if early_stopping:
    callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                                   restore_best_weights=True))
  callback_list = keras.callbacks.CallbackList(callbacks, model=model)
  timer = training.EpochTimer()
  model.stop_training = False
  callback_list.on_train_begin()
  for epoch in range(resumed_from, epochs):
    callback_list.on_epoch_begin(epoch)
    start = time.perf_counter()
    try:
      with _quiet_tf_info():
        loss, accuracy = steps.run_epoch(train_dist, training=True)
        logs = {"loss": loss, "accuracy": accuracy}
        if val_dist is not None:
          logs["val_loss"], logs["val_accuracy"] = steps.run_epoch(val_dist, training=False)
    except LOST_PEER as e:
      raise lost_peer(e, epoch, os.path.join(output_dir, "backup") if chief
                      else "the chief's --output_dir/backup") from e
    if not accuracy_logged:
      logs = {k: v for k, v in logs.items() if not k.endswith("accuracy")}
    timer.seconds.append(time.perf_counter() - start)
    print(f"Epoch {epoch + 1}/{epochs} - {timer.seconds[-1]:.1f}s - "
          + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), file=sys.stderr)
    _append_csv(csv_path, epoch, logs)  # before the backup: a kill between them repeats a row
    if not all(math.isfinite(v) for v in logs.values()):
      raise training.diverged(loss, saver.ckpt_dir, backup.dir)
    for kind, prefix in (("train", ""), ("validation", "val_")):
      with writers[kind].as_default():
        for name in ("loss", "accuracy"):
          if prefix + name in logs:
            tf.summary.scalar(f"epoch_{name}", logs[prefix + name], step=epoch)
    callback_list.on_epoch_end(epoch, logs)
    if model.stop_training:
      break
  callback_list.on_train_end()
  for writer in writers.values():
    writer.close()
  shutil.rmtree(backup.dir, ignore_errors=True)  # finished: the next run starts fresh
  rows = training.read_log(csv_path)
  if not chief:
    shutil.rmtree(work_dir, ignore_errors=True)
  # Keras 3's evaluate and predict fail under MultiWorkerMirroredStrategy like fit.
  # Training is over and every worker holds the same weights, so each one
  # evaluates and predicts on its own, as a one-device model: the same numbers everywhere.
  model._distribute_strategy = None  # pylint: disable=protected-access
  return rows, timer, resumed_from
