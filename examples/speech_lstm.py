"""Title: Spoken digits with an LSTM: the tutorial's Embedding + LSTM(32) "speech recognition" toy

Reproduces the speech-recognition snippet of tutorial 002 §4.2 (../shared/tutorials):
"preprocess the input audio (padding)", `pad_sequences(sequences, maxlen=100)`,
then `Sequential([TimeDistributed(Embedding(1000, 16, input_length=100)),
LSTM(32), Dense(10, softmax)])`, categorical cross-entropy, adam, 10 epochs,
batch 32. The tutorial never says how audio becomes the integer sequences an
Embedding reads; here it becomes discrete audio tokens:

* `document` (default): 8 kHz audio, 1.0 s per clip -> log-mel frames
  (tf.signal: 25 ms windows, 10 ms hop, 40 mel bins) -> each frame replaced by
  the index of its nearest entry in a k-means codebook of 1,000 codes learned
  on the TRAINING frames only -> 100 tokens -> Embedding(1000, 16) -> LSTM(32)
  -> Dense(10, softmax); one-hot labels, categorical cross-entropy, adam,
  batch 32, 10 epochs. 22,602 trainable parameters (16,000 + 6,272 + 330),
  plus the codebook (40,000) and frame normalisation (81) as fixed weights.
* `mel`: the same LSTM(32) reading the normalised log-mel frames directly (no
  codebook, no Embedding): 9,674 trainable parameters.
* `conv_lstm`: Conv1D(32, 5, relu), MaxPool(2), LSTM(32) on the same frames:
  15,082 trainable parameters.

Where this version differs, and why:

* The snippet does not run as printed: TimeDistributed needs an input of at
  least 3 dimensions, and on a 3-D input the Embedding's output is 4-D, which
  an LSTM cannot take. The wrapper is removed: a plain Embedding already
  embeds every time step. Keras 3 has no `input_length` argument any more.
* The tutorial's "padding" of audio to 100 steps: every clip (silence at its
  ends trimmed) is zero-padded to 1.0 s = 8,000 samples, which at a 10 ms hop
  is exactly 100 frames, so the token sequences need no pad_sequences of
  their own. As pad_sequences does by default (padding="pre",
  truncating="pre"), the padding goes in front, so the LSTM's last step comes
  right after the word instead of after a run of silence.
* Predict reads WAV files of any sample rate and channel count (converted to
  8 kHz mono), and refuses empty, silent and non-WAV files and clips with
  more than 1.5 s of sound (not one spoken digit).
* The whole front-end (peak normalisation, log-mel, frame normalisation,
  codebook lookup) is made of Keras layers inside the saved model, so
  model.keras alone takes raw 8 kHz waveforms; the codebook is a
  non-trainable weight of the `CodebookTokens` layer. Nothing in the
  front-end learns, so training runs it once per clip in the input pipeline
  (cached) and fits the layers after it on the features; model.keras and the
  checkpoints hold the whole model (common/front_end.py). `make bench`
  measures what that saves (README, Speed).
* Labels are one-hot for categorical cross-entropy, as in the snippet, through
  common.heads.ClassifierHead(one_hot=True).
* Validation: like the snippet's `fit`, the default trains on every training
  clip and holds out none. `--validation_split=0.1` holds out a seeded 10%
  of the training clips through common's split (clip-level, so validation
  voices also occur in training: validation accuracy is optimistic; the test
  set measures unseen voices).
* Data: the bundled `spoken_digit_espeak` sample (offline; synthetic speech
  by espeak-ng, 480 train / 120 test clips, the 12 test voice settings never
  heard in training, see common/datasets/audio.py), the Free Spoken Digit
  Dataset through tfds (`--dataset=spoken_digit`), or your own WAV files.

Figures (results/speech_lstm/<variant>-e<epochs>[-seed<k>]-spoken_digit_espeak-bundled/
results.json, written by `make results-speech` on a 2-core CPU, TF 2.21 /
Keras 3.15): test accuracy on the 120 bundled clips of the 12 held-out voice
settings, 480 training clips; mean (min-max) of seeds 42, 1, 2 at 10 epochs
and of seeds 42, 1, 2, 3, 4 at 30 epochs.

| variant   | trainable params | 10 epochs, 3 seeds  | 30 epochs, 5 seeds   | 30 epochs, seed 42 |
| --------- | ---------------- | ------------------- | -------------------- | ------------------ |
| document  | 22,602           | 76.9% (75.8-78.3%)  | 75.2% (65.0-83.3%)   | 80.0%              |
| mel       | 9,674            | 86.1% (80.8-91.7%)  | 89.3% (80.0-95.0%)   | 90.8%              |
| conv_lstm | 15,082           | 93.6% (89.2-98.3%)  | 96.2% (90.8-100.0%)  | 90.8%              |

Chance is 10%. 20 more epochs buy about 3 points on average for `mel` and
`conv_lstm` and nothing for the token model, and the spread across seeds is
larger than that. Every model ends at 100% training accuracy after 30 epochs,
so what is missing is generalisation to voices never heard; the token model,
whose 1,000 codes are learned on the training voices' frames, generalises
least. A 30-epoch run trains in 8-10 s here (k-means for the codebook adds
about 6 s).
On the real Free Spoken Digit Dataset (tfds, test speaker `theo`): not
measured here (no dataset host is reachable); run
`python examples/speech_lstm.py --dataset=spoken_digit --data_source=tfds --epochs=30`.
Expected figure (not measured here): no figure to expect from a comparable
published run. FSDD's own split (its README: recordings 0-4 of every speaker
are the test set) tests speakers who are also heard in training, so figures
published on it do not carry over, and no published run of a small model
with a held-out speaker was found. Holding out a whole speaker is harder (on
the bundled voices above: training accuracy near 100%, test accuracy 75-96% on average at 30 epochs).

Usage:
  python examples/speech_lstm.py                          # document variant, 10 epochs
  python examples/speech_lstm.py --variant=conv_lstm --epochs=30
  python examples/speech_lstm.py --dataset=spoken_digit --data_source=tfds   # FSDD, download
  python examples/speech_lstm.py --data_source=files --data_dir=my_digits    # my_digits/0/*.wav ...
  python examples/speech_lstm.py --mode=tune --max_trials=6 --tune_epochs=5   # keras-tuner
  python examples/speech_lstm.py \\
      --hparams=runs/speech_lstm/document-spoken_digit_espeak/best_hparams.json  # retrain best
  python examples/speech_lstm.py --mode=predict \\
      --model=runs/speech_lstm/document-spoken_digit_espeak/model.keras --wav=a.wav,b.wav
"""

from common import cli  # before anything imports TensorFlow: keeps its start-up log quiet

import sys
import time

from absl import flags
import keras
from keras import layers
import numpy as np
import tensorflow as tf

from common import datasets
from common import flags as common_flags
from common import front_end
from common import pipeline
from common import results
from common import saved_model
from common import strategy as strategy_lib
from common import training
from common import tuning
from common.datasets import audio
from common.errors import UserError, exit_on_user_error
from common.heads import ClassifierHead

EXAMPLE = "speech_lstm"
DATASETS = ("spoken_digit_espeak", "spoken_digit")
INPUT_SHAPE = (audio.CLIP_SAMPLES,)
FRAME_LENGTH, FRAME_STEP, FFT_LENGTH = 200, 80, 256  # 25 ms windows, 10 ms hop at 8 kHz
MEL_BINS = 40
SEQUENCE_LENGTH = -(-audio.CLIP_SAMPLES // FRAME_STEP)  # 100 frames per 1.0 s clip

# The tutorial's settings for `document`; the other variants keep them.
VARIANTS = {
    "document": dict(epochs=10, batch_size=32, learning_rate=0.001, optimizer="adam",
                     one_hot=True, validation_split=0.0, codebook_size=1000, embedding_dim=16,
                     units=32),
    "mel": dict(epochs=10, batch_size=32, learning_rate=0.001, optimizer="adam", one_hot=True,
                validation_split=0.0, units=32),
    "conv_lstm": dict(epochs=10, batch_size=32, learning_rate=0.001, optimizer="adam",
                      one_hot=True, validation_split=0.0, filters=32, kernel_size=5, units=32),
}


def define_flags(fv=flags.FLAGS):
  common_flags.define_common_flags(fv, example=EXAMPLE, variants=tuple(VARIANTS),
                                   datasets=DATASETS, variant_defaults=VARIANTS,
                                   modes=("train", "predict", "tune"))
  flags.DEFINE_integer("codebook_size", None,
                       "For --variant=document: k-means codes (and Embedding rows) (default: "
                       "1000, the snippet's Embedding(1000, 16)).", flag_values=fv)
  flags.DEFINE_list("wav", None,
                    "For --mode=predict: comma-separated WAV files, one spoken digit each, any "
                    "sample rate, mono or stereo.", flag_values=fv)
  flags.register_validator("codebook_size", lambda v: v is None or v >= 2,
                           message="--codebook_size must be at least 2", flag_values=fv)
  flags.register_multi_flags_validator(
      ["mode", "wav"], lambda d: d["mode"] != "predict" or bool(d["wav"]),
      message="--mode=predict needs --wav=a.wav,b.wav", flag_values=fv)


# ## Front-end: waveform -> log-mel frames -> discrete tokens, as Keras layers


@keras.saving.register_keras_serializable(package=EXAMPLE)
class LogMel(layers.Layer):
  """(batch, samples) waveforms -> (batch, frames, MEL_BINS) log-mel energies.

  Each clip is first scaled to a peak of 1, so loud and quiet recordings give
  the same frames.
  """

  def __init__(self, sample_rate=audio.SAMPLE_RATE, num_mel_bins=MEL_BINS, **kwargs):
    super().__init__(**kwargs)
    self.sample_rate, self.num_mel_bins = sample_rate, num_mel_bins
    self.mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins, FFT_LENGTH // 2 + 1, sample_rate, lower_edge_hertz=60.0,
        upper_edge_hertz=sample_rate / 2 - 200)

  def call(self, waveforms):
    x = tf.cast(waveforms, tf.float32)
    x = x / tf.maximum(tf.reduce_max(tf.abs(x), axis=-1, keepdims=True), 1e-6)
    power = tf.abs(tf.signal.stft(x, FRAME_LENGTH, FRAME_STEP, FFT_LENGTH, pad_end=True)) ** 2
    return tf.math.log(tf.matmul(power, self.mel_matrix) + 1e-6)

  def compute_output_shape(self, input_shape):
    frames = None if input_shape[-1] is None else -(-input_shape[-1] // FRAME_STEP)
    return (input_shape[0], frames, self.num_mel_bins)

  def get_config(self):
    return {**super().get_config(), "sample_rate": self.sample_rate,
            "num_mel_bins": self.num_mel_bins}


@keras.saving.register_keras_serializable(package=EXAMPLE)
class CodebookTokens(layers.Layer):
  """(batch, frames, dims) -> (batch, frames) int32: the index of each frame's nearest code.

  The codebook is a non-trainable weight, set once by `set_codebook` from
  k-means on the training frames and saved with the model.
  """

  def __init__(self, codebook_size, **kwargs):
    super().__init__(**kwargs)
    self.codebook_size = codebook_size

  def build(self, input_shape):
    self.codebook = self.add_weight(name="codebook", shape=(self.codebook_size, input_shape[-1]),
                                    initializer="zeros", trainable=False)

  def set_codebook(self, codes):
    self.codebook.assign(np.asarray(codes, np.float32))

  def call(self, frames):
    frames = tf.cast(frames, tf.float32)
    codes = tf.convert_to_tensor(self.codebook)
    distances = (tf.reduce_sum(codes ** 2, axis=-1)
                 - 2.0 * tf.einsum("btd,kd->btk", frames, codes))  # + |frame|^2, same for all k
    return tf.argmin(distances, axis=-1, output_type=tf.int32)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1])

  def get_config(self):
    return {**super().get_config(), "codebook_size": self.codebook_size}


def kmeans(points, k, seed, iterations=30, chunk=8192):
  """k-means++ seeding, then Lloyd iterations; deterministic for a seed. Returns (k, dims)."""
  rng = np.random.default_rng(seed)
  points = np.asarray(points, np.float32)

  def nearest(centres):
    best = np.empty(len(points), np.int64)
    sq = np.sum(centres ** 2, axis=1)
    for start in range(0, len(points), chunk):
      block = points[start:start + chunk]
      best[start:start + chunk] = np.argmin(sq - 2.0 * block @ centres.T, axis=1)
    return best

  centres = np.empty((k, points.shape[1]), np.float32)
  centres[0] = points[rng.integers(len(points))]
  closest = np.sum((points - centres[0]) ** 2, axis=1)
  for i in range(1, k):
    total = closest.sum()
    index = rng.choice(len(points), p=closest / total) if total > 0 else rng.integers(len(points))
    centres[i] = points[index]
    closest = np.minimum(closest, np.sum((points - centres[i]) ** 2, axis=1))
  assignment = nearest(centres)
  for _ in range(iterations):
    counts = np.bincount(assignment, minlength=k)
    sums = np.zeros_like(centres)
    np.add.at(sums, assignment, points)
    used = counts > 0
    centres[used] = sums[used] / counts[used, None]  # an empty code keeps its place
    new = nearest(centres)
    if np.array_equal(new, assignment):
      break
    assignment = new
  return centres


# ## Model


def build_model(variant, head, dataset, settings, train_waveforms=None, seed=0, hp=None):
  """The variant's network, front-end included; the name records example, variant and dataset.

  With `train_waveforms` the front-end is fitted: frame normalisation (mean and
  variance of the training frames) and, for `document`, the k-means codebook.
  Nothing else ever sees them, so no test clip shapes the tokens.

  `hp` (keras-tuner HyperParameters) is the search space of --mode=tune: LSTM
  units and, as the variant has them, embedding size or convolution filters
  and kernel; each returns the variant's value unless a search or --hparams
  sets it (learning rate and batch size are searched in common/tuning.py).
  """
  hp = hp or tuning.hyperparameters()
  log_mel = LogMel(name="log_mel")
  normalise = layers.Normalization(axis=-1, name="frame_norm")
  if train_waveforms is not None:
    frames = np.concatenate([np.asarray(log_mel(train_waveforms[i:i + 256]))
                             for i in range(0, len(train_waveforms), 256)])
    normalise.adapt(frames)
  if variant == "document":
    tokens = CodebookTokens(settings["codebook_size"], name="codebook_tokens")
    dim = hp.Choice("embedding_dim", [8, 16, 32], default=settings["embedding_dim"])
    body = [tokens, layers.Embedding(settings["codebook_size"], dim, name="embedding")]
  elif variant == "mel":
    body = []
  else:  # conv_lstm
    body = [layers.Conv1D(hp.Choice("filters", [16, 32, 64], default=settings["filters"]),
                          hp.Choice("kernel_size", [3, 5, 7], default=settings["kernel_size"]),
                          activation="relu", name="conv"),
            layers.MaxPooling1D(2, name="pool")]
  model = keras.Sequential(
      [keras.Input(INPUT_SHAPE, name="waveform"), log_mel, normalise, *body,
       layers.LSTM(hp.Choice("units", [16, 32, 64], default=settings["units"]), name="lstm"),
       head.output_layer()],
      name=f"{EXAMPLE}_{variant}__{dataset}")
  if variant == "document" and train_waveforms is not None:
    fit_codebook(tokens, np.asarray(normalise(frames)).reshape(-1, MEL_BINS), seed)
  return model


FRONT_END = ("log_mel", "frame_norm", "codebook_tokens")  # fixed once fitted: no gradients


def fit_codebook(tokens_layer, train_frames, seed):
  """Learns the codebook on the (normalised) training frames: the only frames it ever sees."""
  start = time.perf_counter()
  tokens_layer.set_codebook(kmeans(train_frames, tokens_layer.codebook_size, seed))
  print(f"codebook: {tokens_layer.codebook_size} codes from {len(train_frames)} training frames "
        f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)


def parameter_counts(model):
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  return {"parameters": trainable, "non_trainable_parameters": model.count_params() - trainable}


def dataset_of(model):
  """The dataset a saved model was trained on, from its name."""
  return model.name.rsplit("__", 1)[-1]


# ## Train and evaluate


def prepare(flags_obj, datasets_override, validation_split=None):
  """Settings, output folder, seed, precision and data: what train and tune share."""
  settings = common_flags.resolve(flags_obj, VARIANTS)
  if validation_split is not None:
    settings["validation_split"] = validation_split
  if flags_obj.codebook_size is not None and flags_obj.variant == "document":
    settings["codebook_size"] = flags_obj.codebook_size
  output_dir = common_flags.output_dir(flags_obj, EXAMPLE)
  training.check_writable(output_dir)
  training.set_seed(flags_obj.seed)
  training.set_precision(flags_obj.precision)
  splits = datasets_override or datasets.load(
      flags_obj.dataset, source=flags_obj.data_source, data_dir=flags_obj.data_dir,
      seed=flags_obj.seed, train_size=settings["train_size"], test_size=settings["test_size"],
      validation_split=settings["validation_split"])
  head = ClassifierHead(splits.spec.class_names, one_hot=settings["one_hot"])
  train_waveforms = np.stack([x for x, _ in splits.train.as_numpy_iterator()])
  return settings, output_dir, splits, head, train_waveforms


def train(flags_obj, datasets_override=None, strategy_override=None):
  strategy = strategy_override or strategy_lib.get_strategy(flags_obj.strategy)
  hparams = tuning.load_hparams(flags_obj.hparams) if flags_obj.hparams else None
  # A tuned configuration is retrained on train+validation and tested once.
  settings, output_dir, splits, head, train_waveforms = prepare(
      flags_obj, datasets_override, validation_split=0.0 if hparams else None)
  hp = tuning.hyperparameters(hparams)
  if hparams:
    settings.update(learning_rate=tuning.learning_rate(hp, settings),
                    batch_size=tuning.batch_size(hp, settings), hparams=hparams)

  strategy_lib.scale_learning_rate(settings, strategy, flags_obj.scale_learning_rate)
  with strategy.scope():
    model = build_model(flags_obj.variant, head, splits.spec.name, settings, train_waveforms,
                        seed=flags_obj.seed, hp=hp)
    front, core = front_end.split(model, FRONT_END)  # core trains on features computed once
    core.compile(optimizer=training.make_optimizer(settings["optimizer"],
                                                   settings["learning_rate"]),
                 loss=head.loss(), metrics=head.metrics(),
                 **training.compile_options(core, jit=settings["jit_compile"]))

  def batches(split, training_mode):
    return pipeline.make(front_end.features(front, split), batch_size=settings["batch_size"],
                         training=training_mode, seed=flags_obj.seed, encode=head.encode)

  train_ds = batches(splits.train, True)
  val_ds = batches(splits.validation, False) if splits.validation else None
  test_ds = batches(splits.test, False)

  outcome = training.train_and_test(
      core, head, train_ds, val_ds, test_ds, test_split=splits.test,
      n_train=splits.sizes["train"], epochs=settings["epochs"], output_dir=output_dir,
      early_stopping=flags_obj.early_stopping, patience=flags_obj.patience, export_model=model)
  history, test_metrics, timing = outcome.history, outcome.test_metrics, outcome.timing
  y_true, y_pred, confidence = outcome.y_true, outcome.y_pred, outcome.confidence
  stats = results.write(
      output_dir, example=EXAMPLE, variant=flags_obj.variant, dataset=splits.spec.name,
      source=splits.source, sizes=splits.sizes, settings=settings, history=history,
      test_metrics=test_metrics, timing=timing, flags_obj=flags_obj,
      extra={**parameter_counts(model), "frames_per_clip": SEQUENCE_LENGTH,
             "mel_bins": MEL_BINS,
             "example_predictions": results.example_predictions(
                 [f"test clip {i}" for i in range(len(y_true))], y_true, y_pred, confidence,
                 splits.spec.class_names)},
      confusion_matrix=results.confusion(y_true, y_pred, head.num_classes),
      class_names=splits.spec.class_names)
  print(f"test accuracy {stats['test']['accuracy']:.4f} on {splits.sizes['test']} examples; "
        f"results in {output_dir}/results.json")
  return stats


# ## Tune with keras-tuner


def tune(flags_obj, datasets_override=None):
  """Searches the variant's widths (see build_model), learning rate and batch size on
  the validation split."""
  settings = common_flags.resolve(flags_obj, VARIANTS)
  settings, output_dir, splits, head, train_waveforms = prepare(
      flags_obj, datasets_override, validation_split=settings["validation_split"] or 0.1)
  # The front-end (normalisation and, for `document`, the k-means codebook) is fitted once on
  # the training frames; the trials train on its output, computed once (common/front_end.py).
  fitted = build_model(flags_obj.variant, head, splits.spec.name, settings, train_waveforms,
                       seed=flags_obj.seed)
  front, _ = front_end.split(fitted, FRONT_END)
  train_features, val_features = (front_end.precompute(front, split) if split is not None
                                  else None for split in (splits.train, splits.validation))

  def batches(ds, batch_size, training_mode):
    return pipeline.make(ds, batch_size=batch_size, training=training_mode,
                         seed=flags_obj.seed, encode=head.encode)

  hypermodel = tuning.HyperModel(
      # no hp touches the front-end, so a trial's model need not fit its own
      lambda hp: build_model(flags_obj.variant, head, splits.spec.name, settings, hp=hp),
      head, settings, batches, front_end=FRONT_END)
  stats = tuning.search(hypermodel, train_features, val_features, flags_obj, output_dir)
  if stats.get("role") != "worker":  # a distributed search's worker reports its own trials
    print(f"best {stats['objective']} {stats['best_score']:.4f} after {stats['trials']} "
          f"trial(s); retrain it with --hparams={output_dir}/best_hparams.json")
  return stats


# ## Predict on your own recordings


def predict(flags_obj):
  model = saved_model.load(flags_obj.model, example=EXAMPLE, input_shape=INPUT_SHAPE)
  dataset = dataset_of(model)
  if dataset not in DATASETS:
    raise UserError(f"{flags_obj.model}: cannot tell which dataset model {model.name!r} was "
                    "trained on; retrain it with this script")
  head = ClassifierHead(datasets.get(dataset).class_names)
  clips = np.stack([audio.load_wav(path, strict=True) for path in flags_obj.wav])
  classes, probs = head.decode(model.predict(clips, verbose=0))
  predictions = []
  for path, c, p in zip(flags_obj.wav, classes, probs):
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
