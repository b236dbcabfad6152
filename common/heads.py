"""Classifier outputs in one place: output layer, loss, label encoding, decoding.

Every example builds its last layer, its loss and its label encoding from a
`ClassifierHead`, so these choices cannot drift apart (the tutorials' own bugs
came from repeating them: a second sigmoid on exported scores, one-hot labels
meeting a sparse loss). Models output probabilities (softmax, or sigmoid for
binary), as the tutorials do, and losses are built with from_logits=False to
match. The output layer computes in float32 even under mixed precision.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class ClassifierHead:
  class_names: tuple
  one_hot: bool = False  # categorical cross-entropy on one-hot labels instead of sparse labels

  @property
  def num_classes(self):
    return len(self.class_names)

  @property
  def binary(self):
    return self.num_classes == 2

  def output_layer(self, name="probabilities"):
    if self.binary:
      return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=name)
    return keras.layers.Dense(self.num_classes, activation="softmax", dtype="float32", name=name)

  def loss(self):
    if self.binary:
      return keras.losses.BinaryCrossentropy(from_logits=False)
    if self.one_hot:
      return keras.losses.CategoricalCrossentropy(from_logits=False)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=False)

  def metrics(self):
    return ["accuracy"]  # Keras picks binary/categorical/sparse accuracy from the loss

  def encode(self, features, label):
    """tf.data map function: class index -> what the loss expects."""
    if self.binary:
      return features, tf.cast(label, tf.float32)
    if self.one_hot:
      return features, tf.one_hot(label, self.num_classes)
    return features, label

  def decode(self, probabilities):
    """Model outputs -> (class indices, probability of the chosen class)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if self.binary:
      p = probs.reshape(-1)
      classes = (p >= 0.5).astype(np.int64)
      return classes, np.where(classes == 1, p, 1.0 - p)
    classes = probs.argmax(axis=-1)
    return classes, probs[np.arange(len(classes)), classes]
