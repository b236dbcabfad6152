"""Compile, fit and evaluate, shared by every example, with the callbacks users expect.

A run's output folder holds:
  backup/           resume state (Keras' BackupAndRestore layout): rerun the same command
  checkpoints/      best.keras (by validation loss, else loss) and last.keras
  tensorboard/      TensorBoard logs
  training_log.csv  one row per epoch, kept across resumes
Backup and checkpoints are written while the next epoch trains (common/checkpoints.py).
"""
import csv
import math
import os
import shutil
import sys
import time
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from common import checkpoints
from common import distributed
from common import pipeline
from common.errors import UserError


def set_seed(seed):
  """Seeds Python, NumPy and TF, and asks TF for deterministic kernels."""
  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()


def set_precision(policy):
  keras.mixed_precision.set_global_policy(policy)


# Per-device settings for model.compile, chosen from `make bench` measurements
# (results/bench/bench.json); none changes what a model learns, only how fast.
# - jit_compile on CPU: XLA fuses a training step into a few compiled loops, at a cost of
#   seconds of compiling in the first epoch (and again for a last, smaller batch). It pays
#   for recurrent models: an LSTM runs its cell once per time step, many small ops that XLA
#   compiles into one loop (the bench's lever rows: sequence LSTM 4.5x, speech LSTM 2.0x in
#   steady state). The embedding-and-pooling text model trained 1.6x faster in steady state
#   but its first epoch took 1.8 s longer, so it reached its target later (6.3 s against
#   4.2 s) and a 5-epoch tuning trial took longer too. The CNNs it made slower (MNIST:
#   0.70x in CPU time, the ablation; oneDNN's convolutions beat XLA's). So on CPU it is on
#   for recurrent models without convolutions only (--jit_compile=on|off overrides it). On
#   a GPU Keras' "auto" decides.
# - steps_per_execution: one call into the TF runtime runs this many batches, so the
#   per-batch Python and dispatch overhead is paid once per group (batch callbacks fire
#   once per group too; epoch callbacks are unchanged).
DEVICE_DEFAULTS = {
    "cpu": {"jit_compile": False, "steps_per_execution": 32},
    "gpu": {"jit_compile": "auto", "steps_per_execution": 32},
    "tpu": {"jit_compile": "auto", "steps_per_execution": 32},
}


def device_kind():
  """'tpu', 'gpu' or 'cpu': the accelerator TensorFlow sees."""
  if tf.config.list_logical_devices("TPU"):
    return "tpu"
  return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def xla_pays_on_cpu(model):
  """True for a recurrent model XLA can compile (no string ops such as TextVectorization)
  that has no convolution layer (see DEVICE_DEFAULTS)."""
  layers = model._flatten_layers()  # pylint: disable=protected-access
  compilable = all(getattr(layer, "supports_jit", True) and not isinstance(
      layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D)
                   for layer in layers)
  return compilable and any(isinstance(layer, keras.layers.RNN) for layer in layers)


def compile_options(model=None, kind=None, jit="auto"):
  """Keyword arguments for model.compile: the fastest settings measured for this device
  and, given `model`, for its kind of network.

  `jit` (--jit_compile): "auto" makes the choice above; "on" and "off" force XLA on or off
  (not under a tf.distribute strategy, which keeps it off).

  Call it inside the strategy's scope, just before compiling `model`. Under a tf.distribute
  strategy (mirrored, multi-worker) steps_per_execution stays 1 and XLA off: Keras 3.15's
  multi-step loop fails there ("You must feed a value for placeholder tensor ..." from its
  has_next check; tests/test_distributed.py).

  Where it chooses XLA it turns TF's op determinism off: Keras refuses XLA while it is on
  (and with it XLA has no MaxPool gradient). XLA's CPU code gives the same numbers on every
  run by itself (tests/test_sequence_lstm.py checks two runs and a resumed one).
  """
  kind = kind or device_kind()
  options = dict(DEVICE_DEFAULTS[kind])
  distributed_scope = tf.distribute.has_strategy()
  if distributed_scope:
    options["steps_per_execution"] = 1
  if jit == "off":
    options["jit_compile"] = False
  elif not distributed_scope and (jit == "on" or (
      kind == "cpu" and model is not None and xla_pays_on_cpu(model))):
    options["jit_compile"] = True
    tf_config.disable_op_determinism()  # no public API; Keras reads the same switch
  return options


def make_optimizer(name, learning_rate):
  classes = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
             "rmsprop": keras.optimizers.RMSprop, "adamw": keras.optimizers.AdamW}
  return classes[name](learning_rate=learning_rate)


def check_writable(output_dir):
  """Fails before any training if the output folder cannot be written."""
  try:
    os.makedirs(output_dir, exist_ok=True)
    probe = os.path.join(output_dir, ".write_test")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise UserError(f"cannot write to output dir {output_dir}: {e.strerror}; "
                    "choose another --output_dir") from e


class EpochTimer(keras.callbacks.Callback):
  """Wall time of each epoch, to report compile/first-epoch cost apart from steady state."""

  def __init__(self):
    super().__init__()
    self.seconds = []

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.seconds.append(time.perf_counter() - self._start)


def resume_epoch(output_dir):
  """The epoch a backup in output_dir would resume from, or 0."""
  return checkpoints.Backup(os.path.join(output_dir, "backup")).epoch()


def fit(model, train_ds, val_ds, *, epochs, output_dir, early_stopping=False, patience=3,
        extra_callbacks=(), export_model=None):
  """model.fit with backup/restore, checkpoints, TensorBoard, CSV log and NaN guard.

  Returns (history_rows, timer, resumed_from). history_rows come from the CSV
  log so they cover every epoch, also those trained before a resume. Raises
  UserError if training diverges; the last good checkpoint and backup are kept.
  `export_model`: what the .keras checkpoints hold, if not `model` (see
  common/checkpoints.py). A model compiled under MultiWorkerMirroredStrategy
  trains with the custom loop of common.distributed instead (Keras 3's fit
  fails there), same outputs.
  """
  if distributed.is_multi_worker(model):
    return distributed.fit(model, train_ds, val_ds, epochs=epochs, output_dir=output_dir,
                           early_stopping=early_stopping, patience=patience,
                           extra_callbacks=extra_callbacks, export_model=export_model)
  csv_path = os.path.join(output_dir, "training_log.csv")
  monitor = "val_loss" if val_ds is not None else "loss"
  saver = checkpoints.EpochCheckpoints(output_dir, monitor, export_model)
  resumed_from = saver.backup.epoch()
  if resumed_from:
    print(f"train: resuming from backup at epoch {resumed_from} of {epochs} "
          "(the interrupted epoch restarts from its first batch)", file=sys.stderr)
    saver.backup.restore(model)
    # Keras 3.15's fit opens an iterator at the start of each epoch and, when the dataset's
    # length is known, a second one at its end (unused); each draws a new shuffle seed.
    pipeline.replay_order(train_ds, resumed_from * (2 if train_ds.cardinality() >= 0 else 1))
  elif os.path.exists(csv_path):
    os.remove(csv_path)  # a fresh run: do not append to an old run's log
  timer = EpochTimer()
  callbacks = [  # the CSV row is written before the backup: a kill between them only repeats a row
      keras.callbacks.CSVLogger(csv_path, append=True),
      saver,
      keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard")),
      keras.callbacks.TerminateOnNaN(),
      timer,
      *extra_callbacks,
  ]
  if early_stopping:
    callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                                   restore_best_weights=True))
  try:
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks,
                        initial_epoch=resumed_from, shuffle=False,
                        verbose=2)  # the tf.data pipeline shuffles, seeded
  finally:
    saver.close()  # the last epoch's files are written before anything reads them
  losses = history.history.get("loss", [])
  if losses and not math.isfinite(losses[-1]):
    raise diverged(losses[-1], saver.ckpt_dir, saver.backup.dir)
  shutil.rmtree(saver.backup.dir, ignore_errors=True)  # finished: the next run starts fresh
  return read_log(csv_path), timer, resumed_from


def diverged(loss, ckpt_dir, backup_dir):
  """The UserError for a run whose loss became NaN/inf, saying what was kept."""
  if os.path.exists(os.path.join(backup_dir, "training_metadata.json")):
    kept = (f"the last good state (epoch {resume_epoch(os.path.dirname(backup_dir))}) is kept "
            f"in {ckpt_dir} and {backup_dir}; rerun with a lower --learning_rate to continue "
            "from it")
  else:
    kept = "no epoch ended with a finite loss, so nothing was saved; lower --learning_rate"
  return UserError(f"training diverged (loss became {loss}); {kept}")


def read_log(csv_path):
  """Rows of the CSV log as dicts of floats, one per epoch (a replayed epoch's last row wins)."""
  by_epoch = {}
  with open(csv_path) as f:
    for row in csv.DictReader(f):
      epoch = int(row.pop("epoch"))
      # CSVLogger writes "NA" for a metric an epoch lacks (e.g. validation when there is none)
      by_epoch[epoch] = {"epoch": epoch,
                         **{k: float(v) for k, v in row.items() if v not in ("NA", "")}}
  return [by_epoch[e] for e in sorted(by_epoch)]


class Outcome(NamedTuple):
  """What train_and_test measured: per-epoch rows, test metrics, test labels and predictions
  (class indices and the probability of the predicted class), and timing for results.json."""
  history: list
  test_metrics: dict
  y_true: np.ndarray
  y_pred: np.ndarray
  confidence: np.ndarray
  timing: dict


def labels(split):
  """The labels of an unbatched (x, y) dataset, as one array."""
  return np.concatenate([y for _, y in split.batch(4096).as_numpy_iterator()])


def train_and_test(model, head, train_ds, val_ds, test_ds, *, test_split, n_train, epochs,
                   output_dir, early_stopping=False, patience=3, export_model=None):
  """fit (see fit), then one evaluation on the test set, and model.keras saved.

  test_split is the unbatched test set behind test_ds, for its labels; n_train the
  number of training examples, for samples/s. `export_model` is saved instead of
  `model` where they differ (see fit).
  """
  start = time.perf_counter()
  history, timer, resumed_from = fit(model, train_ds, val_ds, epochs=epochs,
                                     output_dir=output_dir, early_stopping=early_stopping,
                                     patience=patience, export_model=export_model)
  fit_seconds = time.perf_counter() - start
  test_metrics = model.evaluate(test_ds, return_dict=True, verbose=0)
  y_pred, confidence = head.decode(model.predict(test_ds, verbose=0))
  (export_model or model).save(os.path.join(output_dir, "model.keras"))
  from common.results import throughput  # results imports plotting: only when training ends
  timing = {"fit_s": round(fit_seconds, 2), "resumed_from_epoch": resumed_from,
            **throughput(n_train, timer.seconds),
            # what compile_options resolved to (--jit_compile=auto decides per model)
            "jit_compile": bool(model.jit_compile),
            "steps_per_execution": int(model.steps_per_execution)}
  return Outcome(history, test_metrics, labels(test_split), y_pred, confidence, timing)
