"""What `make bench` trains: each example's data and model, and the two ways of training it.

A case is one example and variant with its data. It trains either

* the tutorial's way (`reference`): NumPy arrays into `model.fit`, the
  variant's batch size, `compile` left at Keras' defaults, no strategy, no
  callbacks; or
* the suite's way (`suite`): the path `examples/*.py` take, built from the same
  common/ code: `strategy.get_strategy`, `training.set_seed`,
  `training.compile_options()`, `pipeline.make` and `training.fit` with its
  checkpoints, backup, TensorBoard and CSV log (text and speech: their fixed
  front-end run once in the pipeline, as the examples train: common/front_end.py).

Both build the model with the example's own `build_model`, so the network and
its FLOPs are the same. Knobs in the configuration change one thing at a time
(see scripts/bench.py). backprop_scratch is left out: it has no Keras model
and no input pipeline (four XOR examples, a hand-written update).
"""
import os
import resource
import shutil
import statistics
import tempfile
import time

import numpy as np

EXAMPLES = ("mnist_cnn", "text_classifier", "speech_lstm", "sequence_lstm", "cifar_cnn")
EXCLUDED = {"backprop_scratch": "no Keras model or input pipeline to time: a 2-2-1 network "
                                "trained by hand-written updates on the 4 XOR examples"}
# Test accuracy a case should reach, for "time to target" (None: not meaningful).
TARGETS = {"mnist_cnn": 0.95, "text_classifier": 0.82, "speech_lstm": 0.70,
           "sequence_lstm": 0.65, "cifar_cnn": None}
DATASETS = {"mnist_cnn": "mnist (bundled)", "text_classifier": "tweets (bundled)",
            "speech_lstm": "spoken_digit_espeak (bundled)",
            "sequence_lstm": "ordered_pattern (generated)",
            "cifar_cnn": "random 32x32x3 images (synthetic: speed only, accuracy is chance)"}


# ---------------------------------------------------------------------------
# FLOPs, counted from the layers.


def forward_flops(model, time_steps=None):
  """Forward-pass FLOPs of one example: 2 x multiply-adds of Conv, Dense and LSTM layers.

  Pooling, activations, embeddings lookups and the speech front-end (STFT, mel
  filter bank, codebook lookup) are not counted. `time_steps` gives the
  sequence length where the model's input leaves it open.
  """
  return sum(layer_forward_flops(layer, time_steps) for layer in model.layers)


def layer_forward_flops(layer, time_steps=None):
  """One layer's share of forward_flops (0 for the kinds it does not count)."""
  kind = type(layer).__name__
  if kind == "Conv2D":
    kh, kw = layer.kernel_size
    cin = layer.input.shape[-1]
    h, w, cout = layer.output.shape[1:]
    return 2 * kh * kw * cin * h * w * cout
  if kind == "Conv1D":
    (k,) = layer.kernel_size
    cin = layer.input.shape[-1]
    length, cout = layer.output.shape[1:]
    return 2 * k * cin * (length or time_steps) * cout
  if kind == "Dense":
    dims = [d or time_steps for d in layer.input.shape[1:]]
    return 2 * int(np.prod(dims)) * layer.units
  if kind == "LSTM":
    steps = layer.input.shape[1] or time_steps
    d, u = layer.input.shape[-1], layer.units
    return 2 * steps * 4 * u * (d + u)  # four gates, each [x, h] @ W per step
  return 0


def training_flops(model, time_steps=None):
  """FLOPs of one trained example: forward + backward, counted as 3 x forward."""
  return 3 * forward_flops(model, time_steps)


# ---------------------------------------------------------------------------
# Cases: data, head, settings and a model builder per example.


class Case:
  """One example and variant on its data; `build()` returns a fresh, uncompiled model."""

  def __init__(self, example, variant, splits, head, settings, build, time_steps=None,
               front_end=None):
    self.example, self.variant, self.splits, self.head = example, variant, splits, head
    self.settings, self.build, self.time_steps = settings, build, time_steps
    self.front_end = front_end  # the example's FRONT_END layer names, if it caches one
    self.target = TARGETS[example]

  def learning_rate(self):
    if self.example == "cifar_cnn":
      from examples import cifar_cnn
      return cifar_cnn.make_learning_rate(self.settings, self.splits.sizes["train"])
    return self.settings["learning_rate"]


def load_case(example, variant, *, train_size=None, test_size=None, seed=42, overrides=None):
  """The example's data (bundled, generated or synthetic) and model builder."""
  import importlib
  from common import datasets
  from common.heads import ClassifierHead
  module = importlib.import_module(f"examples.{example}")
  settings = {**module.VARIANTS[variant], **(overrides or {})}
  split = settings.get("validation_split", 0.0)
  time_steps = None
  if example == "mnist_cnn":
    splits = datasets.load("mnist", source="bundled", seed=seed, train_size=train_size,
                           test_size=test_size, validation_split=split)
    head = ClassifierHead(splits.spec.class_names, one_hot=settings["one_hot"])
    build = lambda: module.build_model(variant, head, "mnist")  # noqa: E731
  elif example == "text_classifier":
    splits = datasets.load("tweets", source="bundled", seed=seed, train_size=train_size,
                           test_size=test_size, validation_split=split)
    head = ClassifierHead(splits.spec.class_names)

    def build():
      vectorizer = module.make_vectorizer(settings, splits.train)
      return module.build_model(variant, head, "tweets", vectorizer, settings)
  elif example == "speech_lstm":
    splits = datasets.load("spoken_digit_espeak", source="bundled", seed=seed,
                           train_size=train_size, test_size=test_size, validation_split=split)
    head = ClassifierHead(splits.spec.class_names, one_hot=settings["one_hot"])
    waveforms = splits.arrays.train[0]
    build = lambda: module.build_model(variant, head, splits.spec.name, settings,  # noqa: E731
                                       waveforms, seed=seed)
  elif example == "sequence_lstm":
    from common.datasets import sequences
    sizes = (train_size or sequences.DEFAULT_SIZES[0], test_size or sequences.DEFAULT_SIZES[1])
    arrays = sequences.make_arrays(seed=seed, sizes=sizes)
    splits = datasets.from_arrays(datasets.get("ordered_pattern"), arrays, source="generated",
                                  seed=seed, validation_split=split)
    head = ClassifierHead(splits.spec.class_names)
    time_steps = sequences.DEFAULT_LENGTH
    build = lambda: module.build_model(variant, head, "ordered_pattern")  # noqa: E731
  elif example == "cifar_cnn":
    splits = synthetic_cifar(train_size or 5000, test_size or 1000, seed, split)
    head = ClassifierHead(splits.spec.class_names)
    build = lambda: module.build_model(variant, head, "cifar10")  # noqa: E731
  else:
    raise ValueError(f"no bench case for {example!r}")
  return Case(example, variant, splits, head, settings, build, time_steps,
              getattr(module, "FRONT_END", None))


def synthetic_cifar(n_train, n_test, seed, validation_split):
  """Random uint8 images of CIFAR-10's shape and random labels: input for timing only."""
  from common import datasets
  rng = np.random.default_rng(seed)
  images = lambda n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # noqa: E731
  labels = lambda n: rng.integers(0, 10, n).astype(np.int64)  # noqa: E731
  arrays = datasets.ArraySplits(train=(images(n_train), labels(n_train)),
                                test=(images(n_test), labels(n_test)))
  return datasets.from_arrays(datasets.get("cifar10"), arrays, source="synthetic", seed=seed,
                              validation_split=validation_split)


# ---------------------------------------------------------------------------
# Training one configuration, in this process.


def numpy_inputs(case, part):
  """(x, y) of a split as the tutorials pass them: float images, labels encoded in NumPy."""
  import keras
  x, y = getattr(case.splits.arrays, part)
  if x.dtype == np.uint8:
    x = x.astype("float32")  # the model rescales: the same arithmetic as x / 255 beforehand
  if case.head.one_hot:
    y = keras.utils.to_categorical(y, case.head.num_classes)
  elif case.head.binary:
    y = y.astype("float32")
  return x, y


def train(case, config, epochs, seed=42):
  """Trains `case` as `config` says; returns the measured figures (see scripts/bench.py)."""
  import keras
  import tensorflow as tf
  from common import front_end, pipeline, training
  from common import strategy as strategy_lib

  reference = config["input"] == "numpy" and config.get("compile") == "keras"
  if config.get("determinism", not reference):
    training.set_seed(seed)
  else:
    keras.utils.set_random_seed(seed)
  training.set_precision(config.get("precision", "float32"))
  if config.get("strategy") == "one_device":
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")  # the suite's default before issue 8
  elif reference:
    strategy = tf.distribute.get_strategy()  # the tutorials use none
  else:
    strategy = strategy_lib.get_strategy("auto")
  batch = case.settings["batch_size"]
  with strategy.scope():
    model = case.build()
    fitted, to_features = model, lambda split: split  # noqa: E731
    if case.front_end and not reference and config.get("front_end_cache", True):
      # as the example trains: its fixed front-end once per example in the pipeline
      front, fitted = front_end.split(model, case.front_end)
      to_features = lambda split: front_end.features(front, split)  # noqa: E731
    # a configuration that sets jit_compile gets the device defaults without the
    # per-model XLA choice (which would also turn op determinism off)
    options = {} if config.get("compile") == "keras" else training.compile_options(
        None if "jit_compile" in config else fitted)
    options.update({k: config[k] for k in ("jit_compile", "steps_per_execution") if k in config})
    fitted.compile(optimizer=training.make_optimizer(case.settings["optimizer"],
                                                     case.learning_rate()),
                   loss=case.head.loss(), metrics=case.head.metrics(), **options)

  splits = case.splits
  if config["input"] == "numpy":
    x, y = numpy_inputs(case, "train")
    val = numpy_inputs(case, "validation") if splits.arrays.validation else None
    train_args = dict(x=x, y=y, batch_size=batch, shuffle=True, validation_data=val)
    test_x, test_y = numpy_inputs(case, "test")
    evaluate = lambda: fitted.evaluate(test_x, test_y, batch_size=batch, verbose=0)  # noqa: E731
    train_ds = None
  else:
    make = lambda split, training_mode: pipeline.make(  # noqa: E731
        to_features(split), batch_size=batch, training=training_mode, seed=seed,
        encode=case.head.encode, cache=config.get("cache", True))
    train_ds = make(splits.train, True)
    val_ds = make(splits.validation, False) if splits.validation else None
    test_ds = make(splits.test, False)
    evaluate = lambda: fitted.evaluate(test_ds, verbose=0)  # noqa: E731

  test_accuracy_by_epoch = []
  cpu_s = []

  class CpuTimer(keras.callbacks.Callback):
    """Process CPU seconds per epoch: less moved by other work on the machine than wall time."""

    def on_epoch_begin(self, epoch, logs=None):
      self.start = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
      cpu_s.append(time.process_time() - self.start)

  class TestAccuracy(keras.callbacks.Callback):
    """Test accuracy after each epoch, for time to target (outside the epoch timer)."""

    def on_epoch_end(self, epoch, logs=None):
      test_accuracy_by_epoch.append(float(evaluate()[1]))

  extra = [CpuTimer(), *([TestAccuracy()] if case.target is not None else [])]
  output_dir = tempfile.mkdtemp(prefix="bench_")
  if config["input"] != "numpy" and config.get("callbacks", True):
    _, timer, _ = training.fit(fitted, train_ds, val_ds, epochs=epochs, output_dir=output_dir,
                               extra_callbacks=extra, export_model=model)
  else:
    timer = training.EpochTimer()
    args = train_args if config["input"] == "numpy" else dict(x=train_ds, validation_data=val_ds)
    fitted.fit(**args, epochs=epochs, verbose=0, callbacks=[timer, *extra])
  epoch_s = timer.seconds
  shutil.rmtree(output_dir, ignore_errors=True)

  evaluate()  # traced already when a target is set; this makes sure
  start = time.perf_counter()
  _, accuracy = evaluate()
  eval_s = time.perf_counter() - start

  pipeline_rate = None
  if train_ds is not None:  # the cache is full after training: the steady-state rate
    start, n = time.perf_counter(), 0
    for xb, _ in train_ds:
      n += int(tf.nest.flatten(xb)[0].shape[0])
    pipeline_rate = n / (time.perf_counter() - start)

  n_train = splits.sizes["train"]
  steady = statistics.median(epoch_s[1:] or epoch_s)
  rate = n_train / steady
  cpu_rate = n_train / statistics.median(cpu_s[1:] or cpu_s)
  flops = training_flops(model, case.time_steps)
  to_target = None
  if case.target is not None:
    hit = [i for i, a in enumerate(test_accuracy_by_epoch) if a >= case.target]
    if hit:
      to_target = {"epochs": hit[0] + 1, "seconds": sum(epoch_s[:hit[0] + 1])}
  return {
      "train_samples_per_s": rate, "first_epoch_s": epoch_s[0], "epoch_s": epoch_s,
      "train_samples_per_cpu_s": cpu_rate, "epoch_cpu_s": cpu_s,
      "eval_samples_per_s": splits.sizes["test"] / eval_s, "test_accuracy": float(accuracy),
      "test_accuracy_by_epoch": test_accuracy_by_epoch, "time_to_target": to_target,
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "train_flops_per_sample": flops, "gflops_per_s": rate * flops / 1e9,
      "pipeline_samples_per_s": pipeline_rate, "train_size": n_train,
      "test_size": splits.sizes["test"], "batch_size": batch,
      "jit_compile_resolved": bool(fitted.jit_compile),
      "steps_per_execution": int(fitted.steps_per_execution),
      "strategy": type(fitted.distribute_strategy).__name__,
      "load_average_1m": os.getloadavg()[0],
  }
