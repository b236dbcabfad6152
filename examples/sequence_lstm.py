"""Title: A 2-layer LSTM that must remember order: the ordered-pattern task

Reproduces the RNN snippet of tutorial 001 §4.2 (../shared/tutorials), written
there in PyTorch: `nn.Embedding(input_size=10, hidden_size=8)`, a 2-layer
`nn.LSTM(8, 8, num_layers=2, batch_first=True)`, `nn.Linear(8, 2)` on the
last time step, `nn.CrossEntropyLoss`, `optim.SGD(lr=0.01)`. The tutorial
gives no data and no training loop ("# ..."); here the model learns a
generated task with a known answer (common/datasets/sequences.py):

* Task `ordered_pattern`: sequences of 20 tokens from 0-9 (--seq_length). The
  pattern tokens 1, 2, 3 (--pattern_length=3) each occur exactly once at
  random positions, the other positions hold random distractors 0, 4-9. The
  label is "present" when they occur in the order 1..2..3 (the sequence
  contains the ordered pattern as a subsequence), else "absent". Classes are
  balanced, so the majority baseline is 50%. Both classes draw positions and
  tokens the same way: which tokens occur says nothing, only their order
  does. Generated deterministically from --seed (8,000 train of which 10%
  validation, 2,000 test); longer sequences and patterns make it harder.

Variants:

* `document` (default): the tutorial's model and optimizer, SGD with learning
  rate 0.01; batch 32 and 20 epochs (the tutorial gives neither).
* `adam`: the same model trained with Adam (learning rate 0.01): plain SGD at
  0.01 barely moves this small LSTM in 20 epochs.
* `bag_of_embeddings`: the order-blind control: the same Embedding(10, 8),
  averaged over the sequence, then Dense(8, relu). It sees which tokens occur
  but not their order, so it must stay near chance.

Where this version differs, and why:

* The original does not run as printed: its `init_hidden` returns one tensor
  `torch.zeros(num_layers, hidden_size)`, without a batch dimension, where
  `nn.LSTM` needs an (h0, c0) pair, each shaped (num_layers, batch,
  hidden_size). Keras LSTM layers start from zero states by themselves, so
  there is no init_hidden here (zeros are what the original meant).
* Keras stacks two `LSTM(8)` layers (the first returns the whole sequence,
  the second only its last step, the original's `output[:, -1, :]`).
* Output and loss come from common.heads.ClassifierHead: with two classes that
  is Dense(1, sigmoid) with binary cross-entropy instead of Linear(8, 2) with
  softmax cross-entropy. A 2-way softmax is a sigmoid of the logits'
  difference, so the models and losses are the same family; the head has 9
  parameters instead of 18. Keras LSTMs also have one bias vector per gate
  where PyTorch has two (b_ih, b_hh), so the model has 1,177 parameters
  (80 embedding + 2 x 544 LSTM + 9) against PyTorch's 1,250.
* The model takes sequences of any length (Input shape (None,)), so
  --mode=predict accepts your own token strings and prints the model's answer
  next to the rule's. Keep them near the training length: a model trained on
  20 tokens has never seen, say, 5, and can be wrong there (it called
  "32190" present).

Figures (results/sequence_lstm/<variant>-ordered_pattern-bundled*/results.json,
written by `make results-sequence` on a 2-core CPU, TF 2.21 / Keras 3.15,
seed 42, 20 epochs), 2,000 test sequences, majority baseline 50.0%:

* default task (length 20, pattern 1..2..3): `adam` 100.0% test accuracy
  (100% validation accuracy from the first epoch on); `document` (SGD 0.01)
  50.0%, its loss still barely below log 2 (0.691): it has only started to
  learn. Its answers all sit at probability 0.50-0.51, so which side of 0.5
  each lands on, and with it the accuracy, moves with float rounding: before
  XLA became the CPU default (common/training.py) the same run ended at 68.2%
  with the same loss, and its best validation accuracy here is 68.8%.
  `bag_of_embeddings` (order-blind) 50.0%, i.e. chance (it ends up answering
  one class; best validation accuracy 51.0%).
* harder task (length 50, pattern 1..2..3..4..5): `adam` 99.6%.
* A 20-epoch run trains in 7-25 s here (XLA compiles each LSTM step loop into
  fused code: without it, 33-330 s).

Usage:
  python examples/sequence_lstm.py                          # document variant (SGD 0.01)
  python examples/sequence_lstm.py --variant=adam           # reaches >= 95%
  python examples/sequence_lstm.py --variant=bag_of_embeddings   # order-blind control
  python examples/sequence_lstm.py --variant=adam --seq_length=40 --pattern_length=4
  python examples/sequence_lstm.py --mode=tune --max_trials=6 --tune_epochs=3   # keras-tuner
  python examples/sequence_lstm.py \\
      --hparams=runs/sequence_lstm/document-ordered_pattern/best_hparams.json  # retrain best
  python examples/sequence_lstm.py --mode=predict \\
      --model=runs/sequence_lstm/adam-ordered_pattern/model.keras \\
      --sequences=50719423806583079841,50739428806581079641
"""

from common import cli  # before anything imports TensorFlow: keeps its start-up log quiet

import functools
import sys

from absl import flags
import keras
from keras import layers
import numpy as np

from common import datasets
from common import flags as common_flags
from common import pipeline
from common import results
from common import saved_model
from common import strategy as strategy_lib
from common import training
from common import tuning
from common.datasets import sequences
from common.errors import UserError, exit_on_user_error
from common.heads import ClassifierHead

EXAMPLE = "sequence_lstm"
DATASETS = ("ordered_pattern",)
EMBEDDING_INPUT = 10  # the tutorial's input_size: the vocabulary
HIDDEN = 8  # the tutorial's hidden_size, for the embedding and both LSTM layers
LAYERS = 2  # the tutorial's num_layers
# --mode=tune searches the optimizer among these and the variant's own (SGD barely moves it)
TUNED_OPTIMIZERS = ("sgd", "adam")

VARIANTS = {
    "document": dict(epochs=20, batch_size=32, learning_rate=0.01, optimizer="sgd",
                     validation_split=0.1),
    "adam": dict(epochs=20, batch_size=32, learning_rate=0.01, optimizer="adam",
                 validation_split=0.1),
    "bag_of_embeddings": dict(epochs=20, batch_size=32, learning_rate=0.01, optimizer="adam",
                              validation_split=0.1),
}


def define_flags(fv=flags.FLAGS):
  common_flags.define_common_flags(fv, example=EXAMPLE, variants=tuple(VARIANTS),
                                   datasets=DATASETS, variant_defaults=VARIANTS,
                                   modes=("train", "predict", "tune"))
  flags.DEFINE_integer("seq_length", sequences.DEFAULT_LENGTH,
                       "Tokens per generated sequence (longer: harder).", flag_values=fv)
  flags.DEFINE_integer("pattern_length", sequences.DEFAULT_PATTERN_LENGTH,
                       "The pattern is the tokens 1..k in this order, k = this (2-9; longer: "
                       "harder).", flag_values=fv)
  flags.DEFINE_list("sequences", None,
                    "For --mode=predict: comma-separated token strings, one digit per token, "
                    "e.g. 51723,32190.", flag_values=fv)
  flags.register_multi_flags_validator(
      ["mode", "sequences"], lambda d: d["mode"] != "predict" or bool(d["sequences"]),
      message="--mode=predict needs --sequences=51723,32190 (digits 0-9, one per token)",
      flag_values=fv)


# ## Model


def build_model(variant, head, dataset, hp=None):
  """The tutorial's Embedding -> 2 x LSTM(8) -> last step -> classes, or the order-blind control.

  `hp` (keras-tuner HyperParameters) is the search space of --mode=tune: the
  hidden size returns the tutorial's 8 unless a search or --hparams sets it
  (learning rate, batch size and optimizer are searched in common/tuning.py).
  """
  hp = hp or tuning.hyperparameters()
  hidden = hp.Choice("hidden_size", [4, 8, 16, 32], default=HIDDEN)
  if variant == "bag_of_embeddings":
    body = [layers.Embedding(EMBEDDING_INPUT, hidden, name="embedding"),
            layers.GlobalAveragePooling1D(name="average_over_time"),  # forgets the order
            layers.Dense(hidden, activation="relu")]
  else:
    body = [layers.Embedding(EMBEDDING_INPUT, hidden, name="embedding"),
            *[layers.LSTM(hidden, return_sequences=i < LAYERS - 1, name=f"lstm_{i + 1}")
              for i in range(LAYERS)]]  # the last layer returns output[:, -1, :] only
  return keras.Sequential([keras.Input((None,), dtype="int32", name="tokens"), *body,
                           head.output_layer()],
                          name=f"{EXAMPLE}_{variant}__{dataset}")


# ## Data


def load_data(flags_obj, settings):
  """The generated task from --seed, --seq_length and --pattern_length."""
  spec = datasets.get(flags_obj.dataset)
  source = datasets.resolve_source(spec, flags_obj.data_source)  # only `bundled` exists
  n_train = settings["train_size"] or sequences.DEFAULT_SIZES[0]
  n_test = settings["test_size"] or sequences.DEFAULT_SIZES[1]
  arrays = sequences.make_arrays(seed=flags_obj.seed, length=flags_obj.seq_length,
                                 pattern_length=flags_obj.pattern_length,
                                 sizes=(n_train, n_test))
  splits = datasets.from_arrays(spec, arrays, source=source, seed=flags_obj.seed,
                                validation_split=settings["validation_split"])
  sizes = splits.sizes
  print(f"data: {spec.name} generated (length {flags_obj.seq_length}, pattern "
        f"{'..'.join(map(str, sequences.pattern(flags_obj.pattern_length)))}, seed "
        f"{flags_obj.seed}): {sizes['train']} train, {sizes['validation']} validation, "
        f"{sizes['test']} test examples", file=sys.stderr)
  return splits


def majority_baseline(train_labels, test_labels):
  """Accuracy on the test set of always answering the training set's most common class."""
  majority = np.bincount(np.asarray(train_labels), minlength=2).argmax()
  return float(np.mean(np.asarray(test_labels) == majority))


# ## Train and evaluate


def prepare(flags_obj, datasets_override, validation_split=None):
  """Settings, output folder, seed, precision and data: what train and tune share."""
  settings = common_flags.resolve(flags_obj, VARIANTS)
  if validation_split is not None:
    settings["validation_split"] = validation_split
  settings.update(seq_length=flags_obj.seq_length, pattern_length=flags_obj.pattern_length)
  output_dir = common_flags.output_dir(flags_obj, EXAMPLE)
  training.check_writable(output_dir)
  training.set_seed(flags_obj.seed)
  training.set_precision(flags_obj.precision)
  sequences.check_task(flags_obj.seq_length, flags_obj.pattern_length)
  splits = datasets_override or load_data(flags_obj, settings)
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
                    batch_size=tuning.batch_size(hp, settings),
                    optimizer=tuning.optimizer(hp, settings, TUNED_OPTIMIZERS), hparams=hparams)

  strategy = strategy_override or strategy_lib.get_strategy(flags_obj.strategy)
  strategy_lib.scale_learning_rate(settings, strategy, flags_obj.scale_learning_rate)
  with strategy.scope():
    model = build_model(flags_obj.variant, head, splits.spec.name, hp)
    model.compile(optimizer=training.make_optimizer(settings["optimizer"],
                                                    settings["learning_rate"]),
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
  y_true, y_pred, confidence = outcome.y_true, outcome.y_pred, outcome.confidence
  y_train = training.labels(splits.train)
  x_test = np.concatenate([x for x, _ in splits.test.batch(4096).as_numpy_iterator()])
  baseline = majority_baseline(y_train, y_true)
  stats = results.write(
      output_dir, example=EXAMPLE, variant=flags_obj.variant, dataset=splits.spec.name,
      source=splits.source, sizes=splits.sizes, settings=settings, history=history,
      test_metrics=test_metrics, timing=timing, flags_obj=flags_obj,
      extra={"parameters": model.count_params(), "majority_baseline": baseline,
             "task": {"seq_length": flags_obj.seq_length,
                      "pattern": list(sequences.pattern(flags_obj.pattern_length)),
                      "vocabulary": sequences.VOCAB_SIZE},
             "order_blind": flags_obj.variant == "bag_of_embeddings",
             "example_predictions": results.example_predictions(
                 ["".join(map(str, x)) for x in x_test], y_true, y_pred, confidence,
                 splits.spec.class_names)},
      confusion_matrix=results.confusion(y_true, y_pred, head.num_classes),
      class_names=splits.spec.class_names)
  print(f"test accuracy {stats['test']['accuracy']:.4f} on {splits.sizes['test']} sequences "
        f"(majority baseline {baseline:.4f}); results in {output_dir}/results.json")
  return stats


# ## Tune with keras-tuner


def tune(flags_obj, datasets_override=None):
  """Searches hidden size, learning rate, batch size and optimizer on the validation split."""
  settings = common_flags.resolve(flags_obj, VARIANTS)
  settings, output_dir, splits, head = prepare(
      flags_obj, datasets_override, validation_split=settings["validation_split"] or 0.1)

  def batches(ds, batch_size, training_mode):
    return pipeline.make(ds, batch_size=batch_size, training=training_mode,
                         seed=flags_obj.seed, encode=head.encode)

  hypermodel = tuning.HyperModel(
      lambda hp: build_model(flags_obj.variant, head, splits.spec.name, hp), head, settings,
      batches, optimizers=TUNED_OPTIMIZERS)
  stats = tuning.search(hypermodel, splits.train, splits.validation, flags_obj, output_dir)
  if stats.get("role") != "worker":  # a distributed search's worker reports its own trials
    print(f"best {stats['objective']} {stats['best_score']:.4f} after {stats['trials']} "
          f"trial(s); retrain it with --hparams={output_dir}/best_hparams.json")
  return stats


# ## Predict on your own sequences


def parse_sequence(text):
  if not text or not text.isdigit():
    raise UserError(f"sequence {text!r} is not a string of digits 0-9 (one digit per token), "
                    "e.g. --sequences=51723,32190")
  return np.array([int(c) for c in text], dtype=np.int32)


def predict(flags_obj):
  model = saved_model.load(flags_obj.model, example=EXAMPLE, input_shape=(None,))
  head = ClassifierHead(sequences.CLASS_NAMES)
  pattern = sequences.pattern(flags_obj.pattern_length)
  predictions = []
  for text in flags_obj.sequences:
    tokens = parse_sequence(text)
    cls, prob = head.decode(model.predict(tokens[None, :], verbose=0))
    answer = head.class_names[int(sequences.contains_pattern(tokens, pattern))]
    print(f"{text}: {head.class_names[cls[0]]} (probability {prob[0]:.3f}; "
          f"rule for pattern {''.join(map(str, pattern))}: {answer})")
    predictions.append({"sequence": text, "class": head.class_names[cls[0]],
                        "probability": float(prob[0]), "rule": answer})
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
