"""Title: Sentiment of short texts with Embedding + GlobalAveragePooling1D

Reproduces the natural-language snippet of tutorial 002 §4.1
(../shared/tutorials): `Tokenizer(num_words=1000, oov_token="<OOV>")` fitted
on the training texts, sequences padded to length 100; Sequential:
Embedding(1000, 16), GlobalAveragePooling1D, Dense(32, relu), Dense(1,
sigmoid); binary cross-entropy, adam, 10 epochs, batch 32; evaluated on a
validation set and a test set. The tutorial never says which texts.

Variants:

* `document` (default): exactly those settings.
* `large_vocab`: the same network with a 10,000-word vocabulary (the
  document's 1,000 words leave most tweet words out of vocabulary).

Data (common/datasets/text.py): `tweets`, a bundled balanced sample of
13,608 real labelled tweets (offline; fixed 80/20 train/test split, of the
training part 12.5% is held out for validation: 70/10/20); `imdb_reviews`
through tfds (25k/25k movie reviews, the usual benchmark for this model); or
your own texts with --data_source=files (a CSV with text,label columns or one
folder of .txt files per class).

Where this version differs, and why:

* Keras 3 has no `Tokenizer`: a `TextVectorization` layer with the same
  vocabulary (max_tokens=1000: index 0 is padding, index 1 the
  out-of-vocabulary token `[UNK]`, 998 words, as Tokenizer's num_words=1000
  with oov_token keeps indices 2-999) and sequence length 100. It is adapted
  on the training split only (never validation or test), and it sits inside
  the model, so the saved model takes raw strings: predicting and serving need
  no separate tokenizer file and cannot tokenise differently. Training runs it
  once per text in the input pipeline (cached) and fits the layers after it on
  the token ids (common/front_end.py); `make bench` measures what that saves.
  XLA could then compile those layers (they have no string ops), but the bench
  shows it gains too little here to repay its compile time, so it stays off.
* TextVectorization lower-cases and strips punctuation including the
  apostrophe ("don't" -> "dont"); Tokenizer keeps apostrophes. It pads and
  truncates at the end, pad_sequences at the front; average pooling over
  (unmasked) padding gives the same result either way, and only texts longer
  than 100 words are cut: the first 100 words are kept here, the last 100 by
  pad_sequences.
* Output layer, loss and label order come from common.heads.ClassifierHead
  and the dataset spec (one place each), so the saved model outputs the
  probability of the second class (positive) once, through one sigmoid.
* Results report the test set's majority-class baseline, so a reader can see
  what the accuracy means.
* --mode=predict never crashes on odd input: empty or whitespace-only texts
  are skipped with a note (and an output line saying so); bytes in
  --input_file that are not UTF-8 become U+FFFD, with a note naming the line;
  a text longer than 10,000 characters is cut there, with a note (the model
  reads only its first 100 words anyway); an input file over 64 MiB is
  refused.

Figures (results/text_classifier/<variant>-tweets-bundled[-seedN]/results.json,
written by `make results-text` on a 2-core CPU, TF 2.21 / Keras 3.15, 10
epochs; 9,526 train / 1,361 validation / 2,721 test tweets, the same test set
for every seed; majority baseline 50.1%):

* `document`: test accuracy 83.6% with the default seed 42, 81.9% and 78.1%
  with seeds 1 and 2 (mean 81.2%): the suite's target of at least 80% holds
  on average, not for every seed. 16,577 parameters, about 0.3 s an epoch
  (the first, which also fills the token cache and traces the step, about 2 s).
* `large_vocab`: 85.3%, 84.6% and 84.3% (mean 84.8%); 160,577 parameters.
  The validation accuracy swings by a few points from epoch to epoch in both
  (the last epoch is what is tested; seed 2's training loss ends as low as
  the others'), so compare means, not single runs.
* IMDB reviews through tfds: not measured here (these machines reach no
  dataset host); `--dataset=imdb_reviews --data_source=tfds` measures it.
  `document`: about 75-85% test accuracy expected, not measured here. Basis:
  TensorFlow's "Word embeddings" tutorial trains the same design
  (Embedding(16), GlobalAveragePooling1D, a small Dense layer, adam) on IMDB
  with a 10,000-word vocabulary and length 100 (as `large_vocab`) and reports
  a validation accuracy of about 78%; its "Basic text classification"
  tutorial, with 10,000 words and length 250, about 86%. This variant keeps
  only 1,000 words and the first 100 of each review (about 230 words on
  average), so it should stay below the 86%.

Usage:
  python examples/text_classifier.py                      # document variant, bundled tweets
  python examples/text_classifier.py --dataset=imdb_reviews --data_source=tfds
  python examples/text_classifier.py --data_source=files --data_dir=my_texts.csv
  python examples/text_classifier.py --mode=predict \\
      --model=runs/text_classifier/document-tweets/model.keras \\
      --text="Great flight, friendly crew" --text="Two hours on hold again"
  python examples/text_classifier.py --mode=predict --model=... --input_file=texts.txt
"""
import os

from common import cli  # before anything imports TensorFlow: keeps its start-up log quiet

import sys

from absl import flags
import keras
from keras import layers
import numpy as np

from common import datasets
from common import flags as common_flags
from common import front_end
from common import pipeline
from common import results
from common import saved_model
from common import strategy as strategy_lib
from common import training
from common import tuning
from common.errors import UserError, exit_on_user_error
from common.heads import ClassifierHead

EXAMPLE = "text_classifier"
DATASETS = ("tweets", "imdb_reviews")

# The tutorial's settings per variant; flags override epochs, batch size and
# the optimizer for one run. The tutorial evaluates on a validation set, so
# 12.5% of the training split is held out (70/10/20 of the bundled tweets).
VARIANTS = {
    "document": dict(epochs=10, batch_size=32, learning_rate=0.001, optimizer="adam",
                     validation_split=0.125, max_tokens=1000, sequence_length=100,
                     embedding_dim=16, units=32),
    "large_vocab": dict(epochs=10, batch_size=32, learning_rate=0.001, optimizer="adam",
                        validation_split=0.125, max_tokens=10_000, sequence_length=100,
                        embedding_dim=16, units=32),
}

# --mode=predict: texts longer than this are cut before tokenising (with a
# note). The model reads only its first `sequence_length` words anyway.
MAX_TEXT_CHARS = 10_000
MAX_INPUT_FILE_BYTES = 64 * 1024 ** 2


def define_flags(fv=flags.FLAGS):
  common_flags.define_common_flags(fv, example=EXAMPLE, variants=tuple(VARIANTS),
                                   datasets=DATASETS, variant_defaults=VARIANTS,
                                   modes=("train", "predict", "tune"))
  flags.DEFINE_multi_string("text", None,
                            "For --mode=predict: a text to classify; repeat the flag for more.",
                            flag_values=fv)
  flags.DEFINE_string("input_file", None,
                      "For --mode=predict: a UTF-8 file with one text per line.", flag_values=fv)
  flags.register_multi_flags_validator(
      ["mode", "text", "input_file"],
      lambda d: d["mode"] != "predict" or bool(d["text"] or d["input_file"]),
      message='--mode=predict needs --text="..." (repeatable) or --input_file=FILE',
      flag_values=fv)


# ## Model


FRONT_END = ("vectorize",)  # adapted before training, then fixed


def make_vectorizer(settings, train_ds):
  """TextVectorization adapted on the training texts only (the Tokenizer's fit_on_texts)."""
  vectorizer = layers.TextVectorization(
      max_tokens=settings["max_tokens"], output_sequence_length=settings["sequence_length"],
      name="vectorize")  # default: lower-case, strip punctuation, split on whitespace; [UNK] = OOV
  vectorizer.adapt(train_ds.map(lambda text, label: text).batch(1024))
  return vectorizer


def build_model(variant, head, dataset, vectorizer, settings, hp=None):
  """Raw strings in, probabilities out; the name records example, variant and dataset.

  `hp` (keras-tuner HyperParameters) is the search space of --mode=tune; each
  lookup returns the tutorial's value unless a search or --hparams sets it.
  """
  hp = hp or tuning.hyperparameters()
  dim = hp.Choice("embedding_dim", [8, 16, 32], default=settings["embedding_dim"])
  units = hp.Choice("units", [16, 32, 64], default=settings["units"])
  dropout = hp.Float("dropout", 0.0, 0.5, step=0.25, default=0.0)  # the tutorial uses none
  return keras.Sequential([
      keras.Input(shape=(), dtype="string", name="text"),
      vectorizer,
      layers.Embedding(settings["max_tokens"], dim, name="embedding"),
      layers.GlobalAveragePooling1D(),
      *([layers.Dropout(dropout)] if dropout else []),
      layers.Dense(units, activation="relu"),
      head.output_layer(),
  ], name=f"{EXAMPLE}_{variant}__{dataset}")


def dataset_of(model):
  """The dataset a saved model was trained on, from its name."""
  return model.name.rsplit("__", 1)[-1]


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
  if not head.binary:
    raise UserError(f"dataset {splits.spec.name!r} has {head.num_classes} classes; this model "
                    "classifies two")
  return settings, output_dir, splits, head


def majority_baseline(test_labels, class_names):
  """Accuracy of always answering the test set's most common class, and that class."""
  counts = np.bincount(test_labels, minlength=len(class_names))
  return float(counts.max() / counts.sum()), class_names[int(counts.argmax())]


def train(flags_obj, datasets_override=None, strategy_override=None):
  strategy = strategy_override or strategy_lib.get_strategy(flags_obj.strategy)
  hparams = tuning.load_hparams(flags_obj.hparams) if flags_obj.hparams else None
  # A tuned configuration is retrained on train+validation and tested once.
  settings, output_dir, splits, head = prepare(flags_obj, datasets_override,
                                               validation_split=0.0 if hparams else None)
  hp = tuning.hyperparameters(hparams)
  if hparams:
    settings.update(learning_rate=tuning.learning_rate(hp, settings),
                    batch_size=tuning.batch_size(hp, settings), hparams=hparams)

  strategy_lib.scale_learning_rate(settings, strategy, flags_obj.scale_learning_rate)
  with strategy.scope():
    vectorizer = make_vectorizer(settings, splits.train)
    model = build_model(flags_obj.variant, head, splits.spec.name, vectorizer, settings, hp)
    front, core = front_end.split(model, FRONT_END)  # core trains on token ids computed once
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
  y_true, y_pred = outcome.y_true, outcome.y_pred
  baseline, majority_class = majority_baseline(y_true, splits.spec.class_names)
  stats = results.write(
      output_dir, example=EXAMPLE, variant=flags_obj.variant, dataset=splits.spec.name,
      source=splits.source, sizes=splits.sizes, settings=settings, history=history,
      test_metrics=test_metrics, timing=timing, flags_obj=flags_obj,
      extra={"parameters": model.count_params(), "majority_baseline": baseline,
             "majority_class": majority_class,
             "vocabulary_size": vectorizer.vocabulary_size(),
             "class_names": list(splits.spec.class_names),
             "tutorial_claim": None},  # the tutorial names no data and claims no figure
      confusion_matrix=results.confusion(y_true, y_pred, head.num_classes),
      class_names=splits.spec.class_names)
  print(f"test accuracy {stats['test']['accuracy']:.4f} on {splits.sizes['test']} examples "
        f"(majority baseline {baseline:.4f}); results in {output_dir}/results.json")
  return stats


# ## Tune with keras-tuner


def tune(flags_obj, datasets_override=None):
  """Searches embedding size, units, dropout, learning rate and batch size on validation."""
  settings = common_flags.resolve(flags_obj, VARIANTS)
  settings, output_dir, splits, head = prepare(
      flags_obj, datasets_override, validation_split=settings["validation_split"] or 0.1)
  vectorizer = make_vectorizer(settings, splits.train)  # adapted once, shared by the trials

  def batches(ds, batch_size, training_mode):
    return pipeline.make(ds, batch_size=batch_size, training=training_mode,
                         seed=flags_obj.seed, encode=head.encode)

  def build(hp):
    return build_model(flags_obj.variant, head, splits.spec.name, vectorizer, settings, hp)

  # The trials train on token ids computed once for all of them (common/front_end.py).
  front, _ = front_end.split(build(tuning.hyperparameters()), FRONT_END)
  train_ids, val_ids = (front_end.precompute(front, split) if split is not None else None
                        for split in (splits.train, splits.validation))
  hypermodel = tuning.HyperModel(build, head, settings, batches, front_end=FRONT_END)
  stats = tuning.search(hypermodel, train_ids, val_ids, flags_obj, output_dir)
  if stats.get("role") != "worker":  # a distributed search's worker reports its own trials
    print(f"best {stats['objective']} {stats['best_score']:.4f} after {stats['trials']} "
          f"trial(s); retrain it with --hparams={output_dir}/best_hparams.json")
  return stats


# ## Predict on your own texts


def read_input_file(path):
  """(where, text) per line of a UTF-8 file; undecodable bytes become U+FFFD with a note."""
  try:
    if os.path.getsize(path) > MAX_INPUT_FILE_BYTES:
      raise UserError(f"--input_file={path} is larger than {MAX_INPUT_FILE_BYTES >> 20} MiB; "
                      "split it into smaller files")
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise UserError(f"cannot read --input_file={path}: {e.strerror}") from e
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()  # the newline that ends the last line starts no new text
  texts = []
  for number, raw in enumerate(lines, 1):
    where = f"{path}:{number}"
    try:
      text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError:
      text = raw.decode("utf-8", errors="replace")
      print(f"note: {where}: not valid UTF-8; undecodable bytes replaced by U+FFFD",
            file=sys.stderr)
    texts.append((where, text.rstrip("\r")))
  return texts


def clean(where, text):
  """The text to classify, or None (with a note) when there is nothing to classify."""
  text = text.strip()
  if not text:
    print(f"note: {where}: empty text, skipped", file=sys.stderr)
    return None
  if len(text) > MAX_TEXT_CHARS:
    print(f"note: {where}: {len(text):,} characters; only the first {MAX_TEXT_CHARS:,} are "
          "used", file=sys.stderr)
    text = text[:MAX_TEXT_CHARS]
  return text


def preview(text, width=60):
  text = " ".join(text.split())
  return text if len(text) <= width else text[:width - 3] + "..."


def predict(flags_obj):
  model = saved_model.load(flags_obj.model, example=EXAMPLE, input_shape=())
  dataset = dataset_of(model)
  if dataset not in DATASETS:
    raise UserError(f"{flags_obj.model}: cannot tell which dataset model {model.name!r} was "
                    "trained on; retrain it with this script")
  head = ClassifierHead(datasets.get(dataset).class_names)
  given = [(f"--text #{i}", t) for i, t in enumerate(flags_obj.text or [], 1)]
  if flags_obj.input_file:
    given += read_input_file(flags_obj.input_file)
  texts = [(where, clean(where, text)) for where, text in given]
  kept = [text for _, text in texts if text is not None]
  if not kept:
    raise UserError("no text to classify: every --text/--input_file line is empty or "
                    "whitespace")
  classes, probs = head.decode(model.predict(np.array(kept, dtype=object), verbose=0))
  predictions, answers = [], iter(zip(classes, probs))
  for where, text in texts:
    if text is None:
      print(f"skipped (empty)\t{where}")
      predictions.append({"input": where, "class": None, "probability": None})
      continue
    c, p = next(answers)
    print(f"{head.class_names[c]} (probability {p:.3f})\t{preview(text)}")
    predictions.append({"input": where, "class": head.class_names[c], "probability": float(p)})
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
