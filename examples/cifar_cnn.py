"""Title: CIFAR-10 with the tutorial's two-convolution CNN

Reproduces the CNN snippet of tutorial 001 §4.1 (../shared/tutorials), written
there in PyTorch for 3x32x32 images:

    conv1 = Conv2d(3, 32, 3, padding=1); conv2 = Conv2d(32, 64, 3, padding=1)
    pool = MaxPool2d(2, 2); fc1 = Linear(64 * 8 * 8, 128); fc2 = Linear(128, 10)
    x = pool(relu(conv1(x))); x = pool(relu(conv2(x))); x = x.view(-1, 64 * 8 * 8)
    x = relu(fc1(x)); x = fc2(x)
    criterion = CrossEntropyLoss(); optimizer = SGD(lr=0.001)

The snippet does not run as printed: `forward` calls `F.relu`, but the
tutorial never imports `torch.nn.functional as F` (it imports only torch,
torch.nn and torch.optim). It gives no data pipeline, batch size or epoch
count ("# ...").

Variants:

* `document` (default): the same layers and shapes, SGD with learning rate
  0.001, batch 32, 10 epochs, no validation hold-out (the tutorial has none).
  545,098 parameters, as in PyTorch: 896 + 18,496 for the convolutions,
  524,416 + 1,290 for the dense layers (asserted in the tests).
* `augmented`: the same network (same 545,098 parameters) trained the way one
  would today: Adam at 0.001 with cosine decay to zero over the run, batch 64,
  random horizontal flips and shifts of up to 10% (Keras preprocessing layers
  in the model, active only while training), 10% of the training images held
  out for validation, same 10 epochs. Plain SGD at 0.001 learns very slowly.

Where this version differs, and why:

* Keras is channels-last: images are (32, 32, 3), not (3, 32, 32). Shapes and
  parameter counts are the same; Flatten orders the 8x8x64 features as
  (height, width, channel) where PyTorch's view orders them (channel, height,
  width), so PyTorch weights would need their fc1 rows permuted to load here.
* `padding=1` with a 3x3 kernel is Keras' padding="same".
* PyTorch's CrossEntropyLoss takes the raw logits of fc2. Here the output
  layer and loss come from common.heads.ClassifierHead: Dense(10, softmax)
  with cross-entropy on probabilities (from_logits=False). That is the same
  loss mathematically (-log softmax(logits)[label]) and the same parameters;
  the model simply outputs probabilities, as every example in this suite does.
* Pixels are scaled to [0, 1] by a Rescaling layer inside the model (the
  usual torchvision ToTensor scaling), so the saved model takes raw images.
* Data: tfds `cifar10`, or your own copy of the binary or python version
  (common/datasets/cifar.py; python batches are read with a restricted
  unpickler that only builds NumPy arrays). There is no bundled sample and no
  synthetic stand-in: offline without the files, the run stops and says how
  to get them.

Figures: not measured here. These machines reach no dataset host, so no
CIFAR-10 run has been made and no results file is committed. To measure:
`make results-cifar` (scripts/reproduce.py --only=cifar_cnn: both variants, tfds or
CIFAR_DIR=/path/to/cifar-10-batches-bin), which writes
results/cifar_cnn/<variant>-cifar10-<source>/results.json.
Expected figures (not measured here):

* `augmented`: about 70-75% test accuracy expected, not measured here.
  Basis: TensorFlow's "Convolutional Neural Network (CNN)" tutorial trains a
  similar network (3x3 convolutions of 32, 64 and 64 filters with pooling,
  Dense(64)) with Adam for 10 epochs, without augmentation, and reports "a
  test accuracy of over 70%". This variant adds flips, shifts and cosine
  decay, holds out 10% for validation and has one convolution fewer.
* `document`: no figure to expect from a comparable published run. The
  nearest, PyTorch's "Training a classifier" tutorial, reaches 54% with a
  smaller CNN (6 and 16 filters of 5x5) trained by SGD at 0.001 with momentum
  0.9, batch 4, 2 epochs: 25,000 steps whose momentum makes each about ten
  times longer. This variant has no momentum: 15,630 steps of 0.001 (batch
  32, 10 epochs), so it learns slowly and its figure cannot be read off
  that run.

Usage:
  python examples/cifar_cnn.py --data_source=tfds        # document variant, downloads CIFAR-10
  python examples/cifar_cnn.py --variant=augmented --data_source=files \\
      --data_dir=~/data/cifar-10-batches-bin
  python examples/cifar_cnn.py --mode=tune --data_source=tfds --max_trials=6 --tune_epochs=2
  python examples/cifar_cnn.py --data_source=tfds \\
      --hparams=runs/cifar_cnn/document-cifar10/best_hparams.json   # retrain the best trial
  python examples/cifar_cnn.py --mode=predict \\
      --model=runs/cifar_cnn/augmented-cifar10/model.keras --images=cat.jpg
"""

from common import cli  # before anything imports TensorFlow: keeps its start-up log quiet

import functools
import math

from absl import flags
import keras
from keras import layers
import numpy as np
from PIL import ImageOps

from common import datasets
from common import flags as common_flags
from common import image_input
from common import pipeline
from common import results
from common import saved_model
from common import strategy as strategy_lib
from common import training
from common import tuning
from common.datasets import cifar
from common.errors import UserError, exit_on_user_error
from common.heads import ClassifierHead

EXAMPLE = "cifar_cnn"
IMAGE_SHAPE = cifar.IMAGE_SHAPE
DATASETS = ("cifar10",)
PYTORCH_PARAMETERS = 545_098  # 896 + 18,496 (conv) + 524,416 + 1,290 (linear)

VARIANTS = {
    "document": dict(epochs=10, batch_size=32, learning_rate=0.001, optimizer="sgd",
                     schedule="constant", augment=False, validation_split=0.0),
    "augmented": dict(epochs=10, batch_size=64, learning_rate=0.001, optimizer="adam",
                      schedule="cosine", augment=True, validation_split=0.1),
}


def define_flags(fv=flags.FLAGS):
  common_flags.define_common_flags(fv, example=EXAMPLE, variants=tuple(VARIANTS),
                                   datasets=DATASETS, variant_defaults=VARIANTS,
                                   modes=("train", "predict", "tune"))
  flags.DEFINE_list("images", None,
                    "For --mode=predict: comma-separated PNG/JPEG files, any size (centre-"
                    "cropped to a square and resized to 32x32).", flag_values=fv)
  flags.register_multi_flags_validator(
      ["mode", "images"], lambda d: d["mode"] != "predict" or bool(d["images"]),
      message="--mode=predict needs --images=a.png,b.jpg", flag_values=fv)


# ## Model


def build_model(variant, head, dataset, hp=None):
  """The tutorial's CNN, channels-last; `augmented` adds parameter-free augmentation layers.

  `hp` (keras-tuner HyperParameters) is the search space of --mode=tune: each
  lookup returns the tutorial's value (no dropout) unless a search or --hparams
  sets it (learning rate and batch size are searched in common/tuning.py).
  """
  hp = hp or tuning.hyperparameters()
  dropout = hp.Float("dropout", 0.0, 0.5, step=0.25, default=0.0)  # the tutorial uses none
  augment = [layers.RandomFlip("horizontal"),
             layers.RandomTranslation(0.1, 0.1, fill_mode="reflect")] \
      if VARIANTS[variant]["augment"] else []
  return keras.Sequential([
      keras.Input(IMAGE_SHAPE, name="image"),
      *augment,
      layers.Rescaling(1.0 / 255),
      # Conv2d(3, 32, 3, padding=1) and Conv2d(32, 64, 3, padding=1), each ReLU then MaxPool(2)
      layers.Conv2D(hp.Choice("filters_1", [16, 32, 64], default=32), 3, padding="same",
                    activation="relu", name="conv1"),
      layers.MaxPooling2D(2, name="pool1"),
      layers.Conv2D(hp.Choice("filters_2", [32, 64, 128], default=64), 3, padding="same",
                    activation="relu", name="conv2"),
      layers.MaxPooling2D(2, name="pool2"),
      layers.Flatten(),  # 8 * 8 * 64 = 4096 features, like x.view(-1, 64 * 8 * 8)
      *([layers.Dropout(dropout, name="dropout")] if dropout else []),
      layers.Dense(hp.Choice("units", [64, 128, 256], default=128), activation="relu",
                   name="fc1"),
      head.output_layer(),  # fc2: Linear(128, 10), softmax from the head
  ], name=f"{EXAMPLE}_{variant}__{dataset}")


def make_learning_rate(settings, n_train):
  """A float, or cosine decay to zero over every step of the run."""
  if settings["schedule"] == "cosine":
    steps = settings["epochs"] * math.ceil(n_train / settings["batch_size"])
    return keras.optimizers.schedules.CosineDecay(settings["learning_rate"], decay_steps=steps)
  return settings["learning_rate"]


# ## Train and evaluate


def prepare(flags_obj, datasets_override, validation_split=None):
  """Settings, output folder, seed, precision and data: what train and tune share."""
  settings = common_flags.resolve(flags_obj, VARIANTS)
  if validation_split is not None:
    settings["validation_split"] = validation_split
  output_dir = common_flags.output_dir(flags_obj, EXAMPLE)
  training.check_writable(output_dir)
  training.set_seed(flags_obj.seed)
  training.set_precision(flags_obj.precision)
  splits = datasets_override or datasets.load(
      flags_obj.dataset, source=flags_obj.data_source, data_dir=flags_obj.data_dir,
      seed=flags_obj.seed, train_size=settings["train_size"], test_size=settings["test_size"],
      validation_split=settings["validation_split"])
  head = ClassifierHead(splits.spec.class_names)
  return settings, output_dir, splits, head


def train(flags_obj, datasets_override=None, strategy_override=None):
  hparams = tuning.load_hparams(flags_obj.hparams) if flags_obj.hparams else None
  # A tuned configuration is retrained on train+validation and tested once.
  settings, output_dir, splits, head = prepare(flags_obj, datasets_override,
                                               validation_split=0.0 if hparams else None)
  hp = tuning.hyperparameters(hparams)
  if hparams:
    settings.update(learning_rate=tuning.learning_rate(hp, settings),
                    batch_size=tuning.batch_size(hp, settings), hparams=hparams)

  strategy = strategy_override or strategy_lib.get_strategy(flags_obj.strategy)
  strategy_lib.scale_learning_rate(settings, strategy, flags_obj.scale_learning_rate)
  with strategy.scope():
    model = build_model(flags_obj.variant, head, splits.spec.name, hp)
    learning_rate = make_learning_rate(settings, splits.sizes["train"])
    model.compile(optimizer=training.make_optimizer(settings["optimizer"], learning_rate),
                  loss=head.loss(), metrics=head.metrics(),
                  **training.compile_options(model, jit=settings["jit_compile"]))

  batches = functools.partial(pipeline.make, batch_size=settings["batch_size"],
                              seed=flags_obj.seed, encode=head.encode)
  train_ds = batches(splits.train, training=True)
  val_ds = batches(splits.validation, training=False) if splits.validation else None
  test_ds = batches(splits.test, training=False)

  outcome = training.train_and_test(
      model, head, train_ds, val_ds, test_ds, test_split=splits.test,
      n_train=splits.sizes["train"], epochs=settings["epochs"], output_dir=output_dir,
      early_stopping=flags_obj.early_stopping, patience=flags_obj.patience)
  history, test_metrics, timing = outcome.history, outcome.test_metrics, outcome.timing
  y_true, y_pred = outcome.y_true, outcome.y_pred
  stats = results.write(
      output_dir, example=EXAMPLE, variant=flags_obj.variant, dataset=splits.spec.name,
      source=splits.source, sizes=splits.sizes, settings=settings, history=history,
      test_metrics=test_metrics, timing=timing, flags_obj=flags_obj,
      extra={"parameters": model.count_params(), "pytorch_parameters": PYTORCH_PARAMETERS,
             "majority_baseline": float(np.bincount(y_true, minlength=10).max() / len(y_true))},
      confusion_matrix=results.confusion(y_true, y_pred, head.num_classes),
      class_names=splits.spec.class_names)
  print(f"test accuracy {stats['test']['accuracy']:.4f} on {splits.sizes['test']} examples; "
        f"results in {output_dir}/results.json")
  return stats


# ## Tune with keras-tuner


def tune(flags_obj, datasets_override=None):
  """Searches filters, dense units, dropout, learning rate and batch size on validation."""
  settings = common_flags.resolve(flags_obj, VARIANTS)
  settings, output_dir, splits, head = prepare(
      flags_obj, datasets_override, validation_split=settings["validation_split"] or 0.1)

  def batches(ds, batch_size, training_mode):
    return pipeline.make(ds, batch_size=batch_size, training=training_mode,
                         seed=flags_obj.seed, encode=head.encode)

  def schedule(rate, hp):  # `augmented`: cosine decay over the trial's own steps
    trial = dict(settings, learning_rate=rate, epochs=flags_obj.tune_epochs,
                 batch_size=tuning.batch_size(hp, settings))
    return make_learning_rate(trial, splits.sizes["train"])

  hypermodel = tuning.HyperModel(
      lambda hp: build_model(flags_obj.variant, head, splits.spec.name, hp), head, settings,
      batches, schedule=schedule)
  stats = tuning.search(hypermodel, splits.train, splits.validation, flags_obj, output_dir)
  if stats.get("role") != "worker":  # a distributed search's worker reports its own trials
    print(f"best {stats['objective']} {stats['best_score']:.4f} after {stats['trials']} "
          f"trial(s); retrain it with --hparams={output_dir}/best_hparams.json")
  return stats


# ## Predict on your own images


def to_cifar_format(image):
  """Any image -> 32x32 RGB uint8: centre-cropped to a square, then resized."""
  rgb = ImageOps.exif_transpose(image).convert("RGB")
  return np.asarray(ImageOps.fit(rgb, IMAGE_SHAPE[:2]), dtype=np.uint8)


def predict(flags_obj):
  model = saved_model.load(flags_obj.model, example=EXAMPLE, input_shape=IMAGE_SHAPE)
  head = ClassifierHead(datasets.get("cifar10").class_names)
  images = []
  for path in flags_obj.images:
    try:
      images.append(to_cifar_format(image_input.read_image(path)))
    except UserError as e:
      raise UserError(f"{path}: {e}") from e
  classes, probs = head.decode(model.predict(np.stack(images), verbose=0))
  predictions = []
  for path, c, p in zip(flags_obj.images, classes, probs):
    print(f"{path}: {head.class_names[c]} (probability {p:.3f})")
    predictions.append({"file": path, "class": head.class_names[c], "probability": float(p)})
  return {"predictions": predictions}


def run(flags_obj, datasets_override=None, strategy_override=None):
  """Trains, tunes or predicts according to --mode; returns a stats dict."""
  if flags_obj.mode == "predict":
    return predict(flags_obj)
  if flags_obj.mode == "tune":
    return tune(flags_obj, datasets_override)
  return train(flags_obj, datasets_override, strategy_override)


def main(_):
  with exit_on_user_error():
    run(flags.FLAGS)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
