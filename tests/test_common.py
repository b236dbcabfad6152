"""Flags, heads, image input, training helpers."""
import os

import numpy as np
import pytest
from absl import flags
from PIL import Image

from common import flags as common_flags
from common import image_input, results, training
from common.errors import UserError
from common.heads import ClassifierHead

VARIANTS = {"document": dict(epochs=5, batch_size=32, learning_rate=0.001, optimizer="adam"),
            "fast": dict(epochs=2, batch_size=256, learning_rate=0.01, optimizer="sgd")}


def make_flags(*argv):
  fv = flags.FlagValues()
  common_flags.define_common_flags(fv, example="toy", variants=tuple(VARIANTS),
                                   datasets=("mnist",), variant_defaults=VARIANTS)
  fv(["prog", *argv])
  return fv


def test_resolve_takes_variant_defaults_and_flag_overrides_without_mutating():
  fv = make_flags("--variant=fast", "--epochs=7")
  settings = common_flags.resolve(fv, VARIANTS)
  assert settings["epochs"] == 7 and settings["batch_size"] == 256
  assert fv.batch_size is None and fv.epochs == 7  # flags untouched


def test_dry_run_is_one_tiny_epoch():
  settings = common_flags.resolve(make_flags("--dry_run"), VARIANTS)
  assert settings["epochs"] == 1 and settings["train_size"] <= 256


@pytest.mark.parametrize("argv,message", [
    (["--epochs=0"], "--epochs must be a positive integer"),
    (["--learning_rate=-1"], "--learning_rate must be positive"),
    (["--validation_split=1.5"], "--validation_split must be in [0, 1)"),
    (["--mode=predict"], "needs --model"),
    (["--data_source=files"], "needs --data_dir"),
    (["--variant=nope"], "value should be one of"),
])
def test_bad_flags_are_rejected_with_a_message(argv, message):
  with pytest.raises(flags.IllegalFlagValueError, match=message.replace("[", r"\[")
                     .replace("(", r"\(").replace(")", r"\)")):
    make_flags(*argv)


def test_help_states_variant_defaults():
  fv = flags.FlagValues()
  common_flags.define_common_flags(fv, example="toy", variants=tuple(VARIANTS),
                                   datasets=("mnist",), variant_defaults=VARIANTS)
  assert "document: 5" in fv["epochs"].help


def test_heads_keep_loss_labels_and_decoding_together():
  ten = ClassifierHead(tuple("0123456789"))
  assert ten.loss().__class__.__name__ == "SparseCategoricalCrossentropy"
  assert ten.loss().get_config()["from_logits"] is False
  onehot = ClassifierHead(tuple("0123456789"), one_hot=True)
  _, y = onehot.encode(None, np.int64(3))
  assert list(np.asarray(y)) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
  binary = ClassifierHead(("negative", "positive"))
  assert binary.output_layer().units == 1
  classes, probs = binary.decode(np.array([[0.2], [0.9]]))
  assert list(classes) == [0, 1] and np.allclose(probs, [0.8, 0.9])
  classes, probs = ten.decode(np.eye(10)[[3, 7]] * 0.9)
  assert list(classes) == [3, 7]


def test_confusion_counts():
  m = results.confusion([0, 1, 1, 2], [0, 1, 2, 2], 3)
  assert m.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]


def test_throughput_separates_first_epoch():
  t = results.throughput(1000, [5.0, 1.0, 1.2, 1.0])
  assert t["first_epoch_s"] == 5.0 and t["train_samples_per_s"] == 1000.0


def _draw_digit(dark_on_light, size=(120, 90), mode="RGB"):
  image = np.full((size[1], size[0]), 255 if dark_on_light else 0, np.uint8)
  image[20:70, 40:50] = 0 if dark_on_light else 255  # a "1"
  return Image.fromarray(image).convert(mode)


@pytest.mark.parametrize("dark_on_light", [True, False])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_user_images_become_light_on_dark_28x28(dark_on_light, mode):
  out = image_input.to_digit_format(_draw_digit(dark_on_light, mode=mode))
  assert out.shape == (28, 28, 1) and out.dtype == np.uint8
  assert out[0, 0, 0] == 0 and out.max() == 255  # background black, stroke bright
  assert out[:4].max() == 0  # MNIST's 4-pixel margin


def test_blank_and_non_images_are_refused(tmp_path):
  with pytest.raises(UserError, match="blank"):
    image_input.to_digit_format(Image.new("L", (30, 30), 200))
  (tmp_path / "notes.png").write_text("hello")
  with pytest.raises(UserError, match="not a readable image"):
    image_input.read_image(str(tmp_path / "notes.png"))
  with pytest.raises(UserError, match="not found"):
    image_input.read_image(str(tmp_path / "missing.png"))


def test_unwritable_output_dir_fails_before_training(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(UserError, match="cannot write to output dir"):
    training.check_writable(str(blocker / "sub"))


def test_front_end_split_shares_layers_and_features_keep_order_and_length():
  import keras
  import tensorflow as tf
  from common import front_end
  texts = ["good film", "bad film", "good good plot", "bad plot twist", "fine"]
  labels = np.array([1, 0, 1, 0, 1])
  vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4,
                                             name="vectorize")
  vectorize.adapt(texts)
  model = keras.Sequential([keras.Input((), dtype="string"), vectorize,
                            keras.layers.Embedding(20, 3), keras.layers.GlobalAveragePooling1D(),
                            keras.layers.Dense(1, activation="sigmoid")], name="m")
  front, core = front_end.split(model, ("vectorize",))
  assert core.input_shape == (None, 4) and core.inputs[0].dtype == "int64"
  assert [l.name for l in front.layers] == ["vectorize"]
  ds = tf.data.Dataset.from_tensor_slices((texts, labels))
  feats = front_end.features(front, ds, batch_size=2)
  assert int(feats.cardinality()) == len(texts)  # known, as for the raw dataset
  ids = np.stack([x for x, _ in feats.as_numpy_iterator()])
  np.testing.assert_array_equal(ids, vectorize(tf.constant(texts)).numpy())
  np.testing.assert_array_equal([y for _, y in feats.as_numpy_iterator()], labels)
  before = model.predict(tf.constant(texts), verbose=0)
  core.compile("adam", "binary_crossentropy")
  core.fit(feats.batch(5), epochs=2, verbose=0)  # training the core trains the model
  np.testing.assert_allclose(model.predict(tf.constant(texts), verbose=0),
                             core.predict(ids, verbose=0), rtol=1e-6)
  assert not np.allclose(model.predict(tf.constant(texts), verbose=0), before)
  with pytest.raises(ValueError, match="does not start with"):
    front_end.split(model, ("log_mel",))
