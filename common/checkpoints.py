"""Per-epoch checkpoints and the resume backup, written while the next epoch trains.

Files, in Keras' own formats (what keras.callbacks.ModelCheckpoint and
BackupAndRestore write):
  backup/latest.weights.h5, backup/training_metadata.json   resume state
  checkpoints/best.keras, checkpoints/last.keras             loadable models

Saving a small model is mostly Keras' Python serialisation (about 30 ms per
.keras file for the MNIST CNN, three files an epoch), which on small epochs
is a large share of the epoch. So at an epoch's end only the trained values are
copied (about 1 ms) into a shadow of the model, loaded once from a .keras file
of it, and one background thread serialises and writes the shadow while the
next epoch trains. Every file is written under a temporary name and renamed,
so a kill leaves the previous complete file, never half a new one.
"""
import concurrent.futures
import json
import math
import os
import sys
import tempfile

import keras


class Backup:
  """The resume state, in the layout of Keras' BackupAndRestore (weights with the optimizer
  state, and the number of finished epochs)."""

  def __init__(self, backup_dir):
    self.dir = backup_dir
    self.weights = os.path.join(backup_dir, "latest.weights.h5")
    self.metadata = os.path.join(backup_dir, "training_metadata.json")

  def epoch(self):
    """Finished epochs the backup holds; 0 without one."""
    try:
      with open(self.metadata) as f:
        return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError):
      return 0

  def restore(self, model):
    if model.optimizer is not None and not model.optimizer.built:
      model.optimizer.build(model.trainable_variables)  # its state is in the file too
    model.load_weights(self.weights)

  def save(self, model, epoch):
    os.makedirs(self.dir, exist_ok=True)
    tmp = os.path.join(self.dir, "saving.weights.h5")  # Keras wants the .weights.h5 suffix
    model.save_weights(tmp, overwrite=True)
    os.replace(tmp, self.weights)
    with open(self.metadata + ".tmp", "w") as f:
      json.dump({"epoch": epoch, "batch": -1}, f)
    os.replace(self.metadata + ".tmp", self.metadata)


def save_model(model, path):
  """model.save, atomically."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path[:-len(".keras")] + ".saving.keras"
  model.save(tmp)
  os.replace(tmp, path)


def _state(model):
  """Every variable a saved file holds: the layers' weights, then the optimizer's."""
  optimizer = getattr(model, "optimizer", None)
  return list(model.variables) + (list(optimizer.variables) if optimizer is not None else [])


class _Shadow:
  """A copy of `model` loaded from a .keras file of it, whose values can be set from the
  model's in one step: what the background thread saves while the model trains on."""

  def __init__(self, model):
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "shadow.keras")
      model.save(path)
      self.model = keras.models.load_model(path, safe_mode=True,
                                           compile=getattr(model, "optimizer", None) is not None)
    originals, copies = _state(model), _state(self.model)
    if len(originals) != len(copies) or any(a.shape != b.shape
                                            for a, b in zip(originals, copies)):
      raise ValueError(f"the reloaded {model.name} does not have the same variables")
    self.pairs = list(zip(originals, copies))

  def copy_from_original(self):
    for original, copy in self.pairs:
      copy.assign(original.value)


class EpochCheckpoints(keras.callbacks.Callback):
  """After each epoch whose metrics are finite: the backup of the trained model, and
  best.keras (by `monitor`, lower is better) and last.keras of `export_model`.

  `export_model` (default: the trained model) is what the .keras files hold: a model
  that shares the trained model's layers, e.g. with a fixed front-end in front that the
  input pipeline runs once instead of every epoch. `best` starts at infinity: a resumed
  run saves its first epoch as best again, as Keras' ModelCheckpoint does. Call close()
  after training: it waits for the last files.
  """

  def __init__(self, output_dir, monitor, export_model=None, background=True):
    super().__init__()
    self.backup = Backup(os.path.join(output_dir, "backup"))
    self.ckpt_dir = os.path.join(output_dir, "checkpoints")
    self.monitor, self.export_model = monitor, export_model
    self.best = math.inf
    self._pool = concurrent.futures.ThreadPoolExecutor(1) if background else None
    self._pending = None
    self._shadows = None

  def _writers(self):
    """(model whose backup is written, model saved as .keras): shadows if they could be made."""
    trained = self.model
    exported = self.export_model or trained
    if self._pool is None:
      return trained, exported
    if self._shadows is None:  # after the first epoch: the optimizer's variables exist by now
      try:
        shadow = _Shadow(trained)
        self._shadows = (shadow, shadow if exported is trained else _Shadow(exported))
      except Exception as e:  # pylint: disable=broad-except  # e.g. a layer that does not reload
        print(f"checkpoints: written between epochs instead of in the background "
              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
              file=sys.stderr)
        self._pool.shutdown()
        self._pool = None
        return trained, exported
    for shadow in dict.fromkeys(self._shadows):
      shadow.copy_from_original()
    return self._shadows[0].model, self._shadows[1].model

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    if not all(math.isfinite(v) for v in logs.values() if isinstance(v, (int, float))):
      return  # keep the last good state
    self.wait()  # the previous epoch's files are complete before its shadow is overwritten
    trained, exported = self._writers()
    improved = logs.get(self.monitor, math.inf) < self.best
    if improved:
      self.best = logs[self.monitor]

    def write():
      self.backup.save(trained, epoch + 1)
      if improved:
        save_model(exported, os.path.join(self.ckpt_dir, "best.keras"))
      save_model(exported, os.path.join(self.ckpt_dir, "last.keras"))

    if self._pool is None:
      write()
    else:
      self._pending = self._pool.submit(write)

  def wait(self):
    """Blocks until the files of the last finished epoch are written; re-raises a failure."""
    if self._pending is not None:
      pending, self._pending = self._pending, None
      pending.result()

  def close(self):
    self.wait()
    if self._pool is not None:
      self._pool.shutdown()
