"""The text classifier end to end: data, vocabulary, raw-string model, predict, bad input."""
import gzip
import json
import os

import keras
import numpy as np
import pytest

from common import datasets
from common.datasets import text as text_data
from common.errors import UserError
from examples import text_classifier
from tests.conftest import assert_user_error, cli

POSITIVE = ["great flight and a lovely crew", "thanks for the great service",
            "love the new seats, great job", "lovely staff, thank you so much",
            "best airline ever, love it", "great music and great food"]
NEGATIVE = ["two hours on hold, awful service", "lost my bag again, terrible",
            "delayed and cancelled, worst airline", "rude staff and a dirty plane",
            "awful wait, terrible app", "worst customer service, never again"]


def tiny_arrays(n=20):
  """A learnable in-memory task; validation and test texts carry words seen nowhere else."""
  texts = [t for i in range(n) for t in (POSITIVE[i % 6], NEGATIVE[i % 6])]
  labels = [l for _ in range(n) for l in (1, 0)]
  x, y = np.array(texts, dtype=object), np.array(labels, dtype=np.int64)
  val = (np.array(["great crew valonlyword", "awful wait valonlyword"], dtype=object),
         np.array([1, 0], dtype=np.int64))
  test = (np.array([t + " testonlyword" for t in POSITIVE + NEGATIVE], dtype=object),
          np.array([1] * 6 + [0] * 6, dtype=np.int64))
  return datasets.ArraySplits(train=(x, y), validation=val, test=test)


@pytest.fixture(scope="module")
def tiny():
  return datasets.from_arrays(datasets.get("tweets"), tiny_arrays(), source="bundled", seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny):
  from absl import flags
  out = tmp_path_factory.mktemp("trained")
  fv = flags.FlagValues()
  text_classifier.define_flags(fv)
  fv(["prog", "--epochs=20", "--batch_size=8", "--learning_rate=0.01", f"--output_dir={out}",
      "--strategy=cpu"])
  return out, text_classifier.run(fv, datasets_override=tiny)


def test_run_writes_results_with_majority_baseline(trained):
  out, stats = trained
  saved = json.loads((out / "results.json").read_text())
  assert saved["example"] == "text_classifier" and saved["variant"] == "document"
  assert saved["sizes"] == {"train": 40, "validation": 2, "test": 12}
  assert saved["settings"]["max_tokens"] == 1000 and saved["settings"]["sequence_length"] == 100
  # Embedding(1000, 16) + Dense(32) + Dense(1): the tutorial's model
  assert saved["parameters"] == 1000 * 16 + (16 * 32 + 32) + (32 + 1)
  assert saved["majority_baseline"] == 0.5 and saved["class_names"] == ["negative", "positive"]
  assert np.sum(saved["confusion_matrix"]) == 12 and saved["epochs"] == 20
  for name in ("model.keras", "training_curves.png", "confusion_matrix.png", "training_log.csv"):
    assert (out / name).exists(), name
  assert stats["test"] == saved["test"]
  # --jit_compile=auto: no XLA for the embedding-and-pooling model (README, Speed)
  assert saved["settings"]["jit_compile"] == "auto"
  assert saved["timing"]["jit_compile"] is False and saved["timing"]["steps_per_execution"] == 32


def test_jit_compile_on_compiles_the_trained_layers_with_xla(fresh_flags, tmp_path, tiny):
  stats = text_classifier.run(fresh_flags(
      text_classifier, "--epochs=2", "--batch_size=8", "--jit_compile=on",
      f"--output_dir={tmp_path}", "--strategy=cpu"), datasets_override=tiny)
  assert stats["settings"]["jit_compile"] == "on" and stats["timing"]["jit_compile"] is True
  model = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
  assert model.predict(np.array(["a great crew"], dtype=object), verbose=0).shape == (1, 1)


def test_vocabulary_is_adapted_on_the_training_split_only(trained):
  model = keras.models.load_model(trained[0] / "model.keras", safe_mode=True)
  vocabulary = model.get_layer("vectorize").get_vocabulary()
  assert vocabulary[:2] == ["", "[UNK]"]  # padding and the out-of-vocabulary token
  assert "great" in vocabulary and "terrible" in vocabulary
  assert "testonlyword" not in vocabulary and "valonlyword" not in vocabulary


def test_saved_model_takes_raw_strings_and_outputs_the_training_models_probabilities(trained,
                                                                                      tiny):
  out, stats = trained
  model = keras.models.load_model(out / "model.keras", safe_mode=True)
  x, y = tiny.arrays.test
  p = model.predict(x, verbose=0).reshape(-1)
  assert np.all((p > 0) & (p < 1))
  # the training model's own evaluate() gave these: same probabilities, hence same loss
  eps = 1e-7
  q = np.clip(p, eps, 1 - eps)
  loss = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
  assert loss == pytest.approx(stats["test"]["loss"], rel=1e-4)
  assert np.mean((p >= 0.5) == y) == pytest.approx(stats["test"]["accuracy"])
  # exactly one sigmoid: recompute the logit by hand from the layers' weights
  ids = model.get_layer("vectorize")(x).numpy()
  pooled = model.get_layer("embedding").get_weights()[0][ids].mean(axis=1)
  w1, b1 = model.layers[-2].get_weights()
  w2, b2 = model.get_layer("probabilities").get_weights()
  logit = (np.maximum(pooled @ w1 + b1, 0) @ w2 + b2).reshape(-1)
  np.testing.assert_allclose(p, 1 / (1 + np.exp(-logit)), rtol=1e-5, atol=1e-6)
  assert stats["test"]["accuracy"] >= 0.75  # it learnt the tiny task


def test_bundled_tweets_split_is_fixed_balanced_and_disjoint():
  splits = datasets.load("tweets", source="bundled", validation_split=0.125)
  assert splits.sizes == {"train": 9526, "validation": 1361, "test": 2721}
  a = splits.arrays
  parts = [{t.lower() for t in x} for x, _ in (a.train, a.validation, a.test)]
  assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
  assert abs(a.test[1].mean() - 0.5) < 0.01
  other_seed = datasets.load("tweets", source="bundled", seed=7, validation_split=0.125)
  assert list(other_seed.arrays.test[0]) == list(a.test[0])  # test set does not move with --seed


def test_own_texts_as_csv_or_class_folders(tmp_path):
  csv_path = tmp_path / "mine.csv.gz"
  rows = ["text,label"] + [f'"{t}, really",positive' for t in POSITIVE] + \
         [f'"{t}",negative' for t in NEGATIVE] + [" ,negative"]
  csv_path.write_bytes(gzip.compress("\n".join(rows).encode()))
  splits = datasets.load("tweets", source="files", data_dir=str(csv_path), validation_split=0)
  assert splits.sizes["train"] + splits.sizes["test"] == 12  # the empty text is dropped
  assert all(t.endswith(", really") for t, l in zip(*splits.arrays.train) if l == 1)

  root = tmp_path / "aclImdb"  # the IMDB download's layout, unsup folder included
  for part in ("train", "test"):
    for label, texts in (("neg", NEGATIVE), ("pos", POSITIVE), ("unsup", ["?"])):
      os.makedirs(root / part / label)
      for i, t in enumerate(texts):
        (root / part / label / f"{i}_1.txt").write_text(t)
  (root / "train" / "pos" / "bad.txt").write_bytes(b"great \xff\xfe crew")
  splits = datasets.load("imdb_reviews", source="files", data_dir=str(root), validation_split=0)
  x, y = splits.arrays.train
  assert splits.sizes == {"train": 13, "validation": 0, "test": 12}
  assert "great \ufffd\ufffd crew" in list(x) and set(y) == {0, 1}

  (tmp_path / "wrong.csv").write_text("text,label\nhello,neutral\n")
  with pytest.raises(UserError, match="unknown label.*'neutral'.*negative or positive"):
    datasets.load("tweets", source="files", data_dir=str(tmp_path / "wrong.csv"))
  with pytest.raises(UserError, match="no class folder.*negative, positive"):
    datasets.load("tweets", source="files", data_dir=str(root / "train"))
  with pytest.raises(UserError, match="neither a CSV file nor a folder"):
    datasets.load("tweets", source="files", data_dir=str(tmp_path / "nowhere"))


def test_imdb_class_order_is_tfds_label_order_and_needs_a_source_offline(tmp_path):
  spec = datasets.get("imdb_reviews")
  assert spec.tfds_name == "imdb_reviews" and spec.class_names == ("neg", "pos")
  with pytest.raises(UserError, match="no bundled source"):
    datasets.load("imdb_reviews", source="bundled")


def test_predict_handles_empty_undecodable_and_huge_input(trained, fresh_flags, tmp_path,
                                                          capsys):
  model = trained[0] / "model.keras"
  lines = [b"great flight, lovely crew", b"   ", b"awful \xff\xfe service",
           b"terrible " * 200_000]
  (tmp_path / "in.txt").write_bytes(b"\n".join(lines) + b"\n")
  stats = text_classifier.run(fresh_flags(
      text_classifier, "--mode=predict", f"--model={model}", "--text=awful wait, terrible app",
      f"--input_file={tmp_path}/in.txt"))
  out, err = capsys.readouterr()
  got = stats["predictions"]
  assert [p["class"] for p in got] == ["negative", "positive", None, "negative", "negative"]
  assert "empty text, skipped" in err and "not valid UTF-8" in err
  assert "only the first 10,000 are used" in err
  printed = out.strip().splitlines()[-5:]
  assert printed[0].startswith("negative (probability ") and printed[2].startswith("skipped")

  with pytest.raises(UserError, match="no text to classify"):
    text_classifier.run(fresh_flags(text_classifier, "--mode=predict", f"--model={model}",
                                    "--text=", "--text= \t "))
  other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)], name="mnist_cnn_x__mnist")
  other.save(tmp_path / "other.keras")
  with pytest.raises(UserError, match="not a text_classifier model"):
    text_classifier.run(fresh_flags(text_classifier, "--mode=predict",
                                    f"--model={tmp_path}/other.keras", "--text=hi"))
  with pytest.raises(UserError, match="cannot read --input_file"):
    text_classifier.run(fresh_flags(text_classifier, "--mode=predict", f"--model={model}",
                                    f"--input_file={tmp_path}/missing.txt"))


def test_tune_searches_and_scores_the_default(fresh_flags, tmp_path, tiny, monkeypatch):
  from common import front_end
  vectorized = []  # the tokenising front-end runs once per split for the whole search
  real_precompute = front_end.precompute
  monkeypatch.setattr(front_end, "precompute",
                      lambda front, ds: vectorized.append(front.name) or real_precompute(front, ds))
  stats = text_classifier.run(fresh_flags(
      text_classifier, "--mode=tune", "--max_trials=2", "--tune_epochs=1",
      f"--output_dir={tmp_path}", "--strategy=cpu"), datasets_override=tiny)
  assert stats["trials"] == 2 and {"embedding_dim", "units"} <= set(stats["best_hparams"])
  assert len(vectorized) == 2  # train and validation, not once per trial or epoch


def test_command_line_train_then_predict(tmp_path):
  out = tmp_path / "run"
  proc = cli("text_classifier.py", "--epochs=1", "--train_size=800", "--test_size=200",
             f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr
  assert "data: tweets from bundled" in proc.stderr and "majority baseline" in proc.stdout
  proc = cli("text_classifier.py", "--mode=predict", f"--model={out}/model.keras",
             "--text=Thank you, great crew and a smooth flight!",
             "--text=Two hours on hold and my bag is lost again")
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 2 and all("(probability " in l for l in lines)
  assert_user_error(cli("text_classifier.py", "--mode=predict", f"--model={out}/model.keras"),
                    "--mode=predict needs --text")
