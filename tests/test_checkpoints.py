"""Checkpoints written in the background hold the state of the epoch they belong to."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import checkpoints

# The score checkpoints monitor, per epoch: best after the second of four epochs, so
# best.keras is written while the third epoch trains and must not hold its weights.
SCORES = [1.0, 0.5, 0.9, 0.7]


class _Score(keras.callbacks.Callback):
  """Sets logs["score"] and records the weights at each epoch's end."""

  def __init__(self):
    super().__init__()
    self.weights = []

  def on_epoch_end(self, epoch, logs=None):
    logs["score"] = SCORES[epoch]
    self.weights.append([w.copy() for w in self.model.get_weights()])


def _model():
  model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dense(2, activation="softmax")], name="tiny")
  model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                metrics=["accuracy"])
  return model


def _data():
  rng = np.random.default_rng(0)
  x = rng.random((512, 8)).astype("float32")
  return tf.data.Dataset.from_tensor_slices((x, (x.sum(1) > 4).astype("int64"))).batch(32)


def _same(a, b):
  return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("background", [True, False])
def test_checkpoints_hold_the_weights_of_their_epoch(tmp_path, background):
  keras.utils.set_random_seed(0)
  model, score = _model(), _Score()
  saver = checkpoints.EpochCheckpoints(str(tmp_path), "score", background=background)
  try:
    model.fit(_data(), epochs=len(SCORES), verbose=0, callbacks=[score, saver])
  finally:
    saver.close()
  assert not _same(score.weights[1], score.weights[-1])  # training moved on after the best
  best = keras.models.load_model(tmp_path / "checkpoints" / "best.keras", safe_mode=True)
  last = keras.models.load_model(tmp_path / "checkpoints" / "last.keras", safe_mode=True)
  assert _same(best.get_weights(), score.weights[1])
  assert _same(last.get_weights(), score.weights[-1])
  assert _same([v.numpy() for v in last.optimizer.variables],
               [v.numpy() for v in model.optimizer.variables])

  restored = _model()
  checkpoints.Backup(str(tmp_path / "backup")).restore(restored)
  assert _same(restored.get_weights(), score.weights[-1])
  assert _same([v.numpy() for v in restored.optimizer.variables],
               [v.numpy() for v in model.optimizer.variables])
  metadata = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())
  assert metadata["epoch"] == len(SCORES)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.keras",
                                                                          "last.keras"]


def test_export_model_is_what_the_keras_files_hold(tmp_path):
  """A model with a fixed front-end in front of the trained one is what gets saved."""
  keras.utils.set_random_seed(0)
  trained = _model()
  front = keras.layers.Rescaling(2.0, name="front_end")
  exported = keras.Sequential([keras.Input((8,)), front, *trained.layers], name="tiny_full")
  saver = checkpoints.EpochCheckpoints(str(tmp_path), "loss", export_model=exported)
  try:
    trained.fit(_data(), epochs=2, verbose=0, callbacks=[saver])
  finally:
    saver.close()
  last = keras.models.load_model(tmp_path / "checkpoints" / "last.keras", safe_mode=True)
  assert last.name == "tiny_full" and last.layers[0].name == "front_end"
  assert _same(last.get_weights(), trained.get_weights())


def test_a_model_that_cannot_be_reloaded_is_saved_between_epochs(tmp_path, monkeypatch, capsys):
  """If the shadow copy cannot be made, checkpoints are still written (synchronously)."""
  def fail(*args, **kwargs):
    raise TypeError("Could not locate class 'MyLayer'")
  monkeypatch.setattr(checkpoints.keras.models, "load_model", fail)
  keras.utils.set_random_seed(0)
  model, score = _model(), _Score()
  saver = checkpoints.EpochCheckpoints(str(tmp_path), "score")
  try:
    model.fit(_data(), epochs=2, verbose=0, callbacks=[score, saver])
  finally:
    saver.close()
  assert "written between epochs instead of in the background (TypeError" in capsys.readouterr().err
  monkeypatch.undo()
  last = keras.models.load_model(tmp_path / "checkpoints" / "last.keras", safe_mode=True)
  assert _same(last.get_weights(), score.weights[-1])
