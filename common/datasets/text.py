"""Labelled texts for binary sentiment: bundled tweets, IMDB reviews, your own files.

Features are scalar tf.string texts (raw: tokenising happens inside the
models), labels int64 indices into the spec's `class_names`, which are sorted
so that they are also the order `text_dataset_from_directory` gives folders.
Class order is defined here once; training, evaluation and prediction all read
it from the spec.

* `tweets`: the bundled balanced sample data/tweets_sentiment.csv.gz (6,804
  negative + 6,804 positive tweets, see data/README.md). It has no split: the
  last 20% of a seed-0 permutation is the test set (fixed, whatever --seed),
  the rest is training data, of which the example holds out a validation share.
* `imdb_reviews`: tfds `imdb_reviews` (25,000 train / 25,000 test movie
  reviews; tfds labels 0 = neg, 1 = pos, hence class_names ("neg", "pos")).
* Your own texts, `--data_source=files --data_dir=PATH`, for either dataset
  (class names must be the dataset's: negative/positive, or neg/pos):
    - a CSV file (.csv or .csv.gz, UTF-8) with columns `text` and `label`;
    - a folder in the `text_dataset_from_directory` layout: one subfolder per
      class holding .txt files (one text per file); other subfolders (such as
      aclImdb's `unsup`) are skipped with a note;
    - a folder with `train` and `test` inside, each either such a class-folder
      layout or, as `train.csv` / `test.csv`, such a CSV (the extracted
      aclImdb/ folder works as it is).
  Without a train/test division the fixed 80/20 split above is used.
"""
import csv
import gzip
import io
import os
import sys

import numpy as np
import tensorflow as tf

from common.datasets.images import verified_path
from common.datasets.registry import ArraySplits, DatasetSpec, register
from common.errors import UserError

BUNDLED_TWEETS = ("tweets_sentiment.csv.gz",
                  "11242c240c6192696130d8d2a94978456525b83165364aa7f5fafd465e7385f5")
TEST_FRACTION = 0.2
MAX_FILE_BYTES = 2 * 1024 ** 3  # a training file larger than this is surely a mistake


def _decode(data, where):
  """UTF-8 text; undecodable bytes become U+FFFD, with a note (never a crash)."""
  try:
    return data.decode("utf-8-sig")
  except UnicodeDecodeError:
    text = data.decode("utf-8-sig", errors="replace")
    print(f"data: {where} is not valid UTF-8; undecodable bytes were replaced by U+FFFD",
          file=sys.stderr)
    return text


def _read_bytes(path):
  try:
    if os.path.getsize(path) > MAX_FILE_BYTES:
      raise UserError(f"{path} is larger than {MAX_FILE_BYTES >> 30} GiB; split it or pass a "
                      "folder of .txt files")
    with open(path, "rb") as f:
      data = f.read()
    if path.endswith(".gz"):
      data = gzip.decompress(data)
  except OSError as e:  # includes gzip.BadGzipFile
    raise UserError(f"cannot read {path}: {e.strerror or e}") from e
  return data


def _arrays(texts, labels):
  return np.array(texts, dtype=object), np.array(labels, dtype=np.int64)


def _index_labels(names, class_names, where):
  index = {name: i for i, name in enumerate(class_names)}
  unknown = sorted(set(names) - set(index))
  if unknown:
    raise UserError(f"{where}: unknown label(s) {', '.join(map(repr, unknown[:5]))}; "
                    f"labels must be {' or '.join(class_names)}")
  return [index[n] for n in names]


def read_csv(path, class_names):
  """(texts, labels) from a UTF-8 CSV (optionally gzipped) with `text` and `label` columns.

  Empty texts are dropped with a note; labels must be class names.
  """
  rows = csv.DictReader(io.StringIO(_decode(_read_bytes(path), path), newline=""))
  if not rows.fieldnames or not {"text", "label"} <= set(rows.fieldnames):
    raise UserError(f"{path}: a CSV needs a header with columns text,label "
                    f"(found {rows.fieldnames})")
  texts, names, n_rows = [], [], 0
  try:
    for n_rows, row in enumerate(rows, 1):
      text, label = (row["text"] or "").strip(), (row["label"] or "").strip()
      if text:
        texts.append(text)
        names.append(label)
  except csv.Error as e:
    raise UserError(f"{path}: not a readable CSV near line {rows.line_num}: {e}") from e
  dropped = n_rows - len(texts)
  if dropped > 0:
    print(f"data: {path}: {dropped} row(s) with empty text skipped", file=sys.stderr)
  return _arrays(texts, _index_labels(names, class_names, path))


def read_class_folders(folder, class_names):
  """(texts, labels) from one subfolder per class, each holding .txt files."""
  found = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
  missing = [c for c in class_names if c not in found]
  if missing:
    raise UserError(f"{folder}: no class folder(s) {', '.join(missing)}; expected one subfolder "
                    f"per class ({', '.join(class_names)}) holding .txt files, or a CSV with "
                    "text,label columns")
  skipped = [d for d in found if d not in class_names]
  if skipped:
    print(f"data: {folder}: skipping folder(s) {', '.join(skipped)} (not a class: "
          f"{', '.join(class_names)})", file=sys.stderr)
  texts, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = os.path.join(folder, name)
    for filename in sorted(os.listdir(class_dir)):
      path = os.path.join(class_dir, filename)
      if filename.endswith(".txt") and os.path.isfile(path):
        text = _decode(_read_bytes(path), path).strip()
        if text:
          texts.append(text)
          labels.append(label)
  if not texts:
    raise UserError(f"{folder}: the class folders hold no non-empty .txt files")
  return _arrays(texts, labels)


def _read_part(folder, part, class_names):
  """`part` (train or test) of a folder: <part>.csv[.gz] or a <part>/ class-folder layout."""
  for name in (f"{part}.csv", f"{part}.csv.gz"):
    if os.path.isfile(os.path.join(folder, name)):
      return read_csv(os.path.join(folder, name), class_names)
  if os.path.isdir(os.path.join(folder, part)):
    return read_class_folders(os.path.join(folder, part), class_names)
  return None


def fixed_split(texts, labels, test_fraction=TEST_FRACTION):
  """Train/test split that is the same whatever --seed: the test set is the last
  `test_fraction` of a seed-0 permutation."""
  order = np.random.default_rng(0).permutation(len(labels))
  n_test = int(len(labels) * test_fraction)
  if n_test == 0 or n_test == len(labels):
    raise UserError(f"only {len(labels)} text(s): too few to split into train and test")
  train, test = order[:-n_test], order[-n_test:]
  return ArraySplits(train=(texts[train], labels[train]), test=(texts[test], labels[test]))


def load_files(path, class_names):
  """Your own texts: a CSV file, a class-folder layout, or train/ + test/ (see module doc)."""
  if os.path.isfile(path):
    return fixed_split(*read_csv(path, class_names))
  if not os.path.isdir(path):
    raise UserError(f"--data_dir={path} is neither a CSV file nor a folder")
  train = _read_part(path, "train", class_names)
  if train is not None:
    test = _read_part(path, "test", class_names)
    if test is None:
      raise UserError(f"{path} has training data but no test data: add test.csv or test/")
    return ArraySplits(train=train, test=test)
  return fixed_split(*read_class_folders(path, class_names))


def _files_loader(class_names):
  return lambda data_dir: load_files(data_dir, class_names)


def _bundled_tweets():
  return fixed_split(*read_csv(verified_path(*BUNDLED_TWEETS), TWEETS.class_names))


def _tfds_map(text, label):
  return text, tf.cast(label, tf.int64)


def files_help(class_names):
  return (f"a CSV file with columns text,label (labels {'/'.join(class_names)}), or a folder "
          f"with one subfolder per class ({', '.join(class_names)}) of .txt files, or a folder "
          "with train/ and test/ (or train.csv and test.csv) laid out that way")


TWEETS = register(DatasetSpec(
    name="tweets", class_names=("negative", "positive"), load_bundled=_bundled_tweets,
    load_files=_files_loader(("negative", "positive")),
    files_help=files_help(("negative", "positive")),
    offline_help="The bundled sample needs no network: --data_source=bundled."))

IMDB_REVIEWS = register(DatasetSpec(
    name="imdb_reviews", class_names=("neg", "pos"),  # tfds ClassLabel names, 0 = neg, 1 = pos
    tfds_name="imdb_reviews", tfds_map=_tfds_map, load_files=_files_loader(("neg", "pos")),
    files_help=files_help(("neg", "pos")),
    offline_help="With internet: --data_source=tfds (downloads about 80 MB). Or extract "
                 "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz and pass "
                 "--data_source=files --data_dir=aclImdb."))

for _spec in (TWEETS, IMDB_REVIEWS):  # folder order (sorted names) must be the label order
  assert list(_spec.class_names) == sorted(_spec.class_names), _spec.name
