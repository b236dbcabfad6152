"""The ordered-pattern task and the 2-layer LSTM: the task needs order, the LSTM learns it."""
import json

import numpy as np
import pytest
import tensorflow as tf

from common import datasets
from common.datasets import sequences
from common.errors import UserError
from examples import sequence_lstm
from tests.conftest import RESUME_TOLERANCE, cli

SHORT = ("--seq_length=8", "--train_size=1200", "--test_size=400", "--strategy=cpu")


def test_generated_task_has_a_known_answer_and_balanced_classes():
  x, y = sequences.generate(1000, length=12, pattern_length=3, seed=7)
  assert x.shape == (1000, 12) and x.dtype == np.int32 and y.dtype == np.int64
  assert x.min() >= 0 and x.max() < sequences.VOCAB_SIZE
  assert y.sum() == 500
  assert [sequences.contains_pattern(row, (1, 2, 3)) for row in x] == list(y.astype(bool))
  for token in (1, 2, 3):  # each pattern token exactly once
    assert np.all((x == token).sum(axis=1) == 1)
  again = sequences.generate(1000, length=12, pattern_length=3, seed=7)
  assert np.array_equal(again[0], x) and np.array_equal(again[1], y)
  assert not np.array_equal(sequences.generate(1000, length=12, seed=8)[0], x)


def test_token_counts_say_nothing_about_the_class():
  """What an order-blind model sees has the same distribution in both classes."""
  x, y = sequences.generate(6000, length=20, pattern_length=3, seed=1)
  counts = np.stack([(x == t).sum(axis=1) for t in range(sequences.VOCAB_SIZE)], axis=1)
  np.testing.assert_allclose(counts[y == 1].mean(0), counts[y == 0].mean(0), atol=0.1)


def test_registry_and_bad_task_settings():
  splits = datasets.load("ordered_pattern", source="bundled", train_size=100, test_size=50)
  assert splits.spec.class_names == ("absent", "present") and splits.sizes["test"] == 50
  with pytest.raises(UserError, match="shorter than the pattern"):
    sequences.generate(10, length=2, pattern_length=3)
  with pytest.raises(UserError, match="pattern length 10 is out of range"):
    sequences.generate(10, length=20, pattern_length=10)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """The adam variant and the order-blind control on short sequences."""
  from absl import flags
  out = {}
  for variant in ("adam", "bag_of_embeddings"):
    path = tmp_path_factory.mktemp(variant)
    fv = flags.FlagValues()
    sequence_lstm.define_flags(fv)
    fv(["prog", f"--variant={variant}", "--epochs=4", f"--output_dir={path}", *SHORT])
    out[variant] = (sequence_lstm.run(fv), path)
  return out


def test_lstm_learns_the_order_and_the_order_blind_control_cannot(trained):
  lstm, path = trained["adam"]
  bag, _ = trained["bag_of_embeddings"]
  assert lstm["test"]["accuracy"] >= 0.9, lstm["test"]
  assert bag["test"]["accuracy"] <= 0.62, bag["test"]
  saved = json.loads((path / "results.json").read_text())
  assert saved["majority_baseline"] == pytest.approx(0.5, abs=0.06)
  assert saved["parameters"] == 1177  # 80 + 2 x 544 + 9 (see the docstring)
  assert bag["parameters"] == 80 + 72 + 9
  assert saved["task"] == {"seq_length": 8, "pattern": [1, 2, 3], "vocabulary": 10}
  assert saved["sizes"] == {"train": 1080, "validation": 120, "test": 400}
  for name in ("model.keras", "training_curves.png", "confusion_matrix.png"):
    assert (path / name).exists(), name


def test_predict_gives_the_model_answer_and_the_rule(trained, fresh_flags):
  model = str(trained["adam"][1] / "model.keras")
  stats = sequence_lstm.run(fresh_flags(sequence_lstm, "--mode=predict", f"--model={model}",
                                        "--sequences=40125736,47321560"))
  rules = [p["rule"] for p in stats["predictions"]]
  assert rules == ["present", "absent"]
  assert all(0.0 < p["probability"] <= 1.0 for p in stats["predictions"])
  with pytest.raises(UserError, match="not a string of digits"):
    sequence_lstm.run(fresh_flags(sequence_lstm, "--mode=predict", f"--model={model}",
                                  "--sequences=12a3"))


def test_bad_inputs_name_the_problem(fresh_flags, tmp_path):
  with pytest.raises(UserError, match="no tfds source"):
    sequence_lstm.run(fresh_flags(sequence_lstm, "--data_source=tfds", "--dry_run",
                                  f"--output_dir={tmp_path}"))
  with pytest.raises(UserError, match="shorter than the pattern"):
    sequence_lstm.run(fresh_flags(sequence_lstm, "--seq_length=2", "--dry_run",
                                  f"--output_dir={tmp_path}"))


def test_command_line_dry_run_of_the_document_variant(tmp_path):
  proc = cli("sequence_lstm.py", "--dry_run", f"--output_dir={tmp_path}")
  assert proc.returncode == 0, proc.stderr
  assert "data: ordered_pattern generated" in proc.stderr
  assert "majority baseline" in proc.stdout
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["settings"]["optimizer"] == "sgd" and saved["settings"]["learning_rate"] == 0.01


# ## Tune with keras-tuner


def test_default_hyperparameters_rebuild_the_tutorials_model_and_optimizer():
  from common import tuning
  from common.heads import ClassifierHead
  head = ClassifierHead(sequences.CLASS_NAMES)
  for variant, parameters, optimizer in (("document", 1177, "SGD"), ("adam", 1177, "Adam"),
                                          ("bag_of_embeddings", 80 + 72 + 9, "Adam")):
    hypermodel = tuning.HyperModel(
        lambda hp, v=variant: sequence_lstm.build_model(v, head, "ordered_pattern", hp), head,
        sequence_lstm.VARIANTS[variant], batches=None,
        optimizers=sequence_lstm.TUNED_OPTIMIZERS)
    model = hypermodel.build(tuning.hyperparameters())
    assert model.count_params() == parameters, variant
    assert type(model.optimizer).__name__ == optimizer
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


def test_tune_writes_best_hparams_and_retrains_them_on_train_and_validation(fresh_flags,
                                                                           tmp_path):
  task = ("--seq_length=8", "--train_size=200", "--test_size=50", "--strategy=cpu")
  stats = sequence_lstm.run(fresh_flags(sequence_lstm, "--mode=tune", "--max_trials=2",
                                        "--tune_epochs=1", f"--output_dir={tmp_path}", *task))
  assert stats["trials"] == 2 and 0 <= stats["default_score"] <= 1
  best = json.loads((tmp_path / "best_hparams.json").read_text())
  assert set(best) == {"hidden_size", "learning_rate", "batch_size", "optimizer"}
  assert best == stats["best_hparams"] and (tmp_path / "tuning.json").exists()
  assert len((tmp_path / "trials.csv").read_text().strip().splitlines()) == 1 + 2

  out = tmp_path / "retrain"
  result = sequence_lstm.run(fresh_flags(sequence_lstm, "--epochs=1", f"--output_dir={out}",
                                         f"--hparams={tmp_path}/best_hparams.json", *task))
  settings = result["settings"]
  assert settings["hparams"] == best and settings["optimizer"] == best["optimizer"]
  assert settings["batch_size"] == best["batch_size"]
  assert settings["learning_rate"] == pytest.approx(best["learning_rate"])
  saved = json.loads((out / "results.json").read_text())
  assert saved["sizes"] == {"train": 200, "validation": 0, "test": 50}  # train + validation
  width = best["hidden_size"]  # the tuned width: Embedding(10, h), 2 LSTM(h), Dense(1)
  assert saved["parameters"] == 10 * width + 2 * 4 * (2 * width * width + width) + width + 1


class _StopBefore(Exception):
  pass


def _xla_fit(tmp_path, epochs, stop_before=None):
  """The adam variant on 512 generated sequences, compiled with the suite's CPU defaults
  (XLA for this LSTM); returns the weights after training and the epoch it resumed
  from. `stop_before`: an epoch at
  whose start training is interrupted, as a kill would (the backup stays)."""
  import keras
  from common import pipeline, training
  from common.heads import ClassifierHead
  training.set_seed(7)
  x, y = sequences.generate(512, length=12, seed=3)
  head = ClassifierHead(datasets.get("ordered_pattern").class_names)
  model = sequence_lstm.build_model("adam", head, "ordered_pattern")
  options = training.compile_options(model)
  assert options["jit_compile"] is True  # an LSTM without convolutions: XLA on CPU
  model.compile(training.make_optimizer("adam", 0.01), loss=head.loss(),
                metrics=head.metrics(), **options)
  ds = pipeline.make(tf.data.Dataset.from_tensor_slices((x, y)), batch_size=32, training=True,
                     seed=7, encode=head.encode)

  class Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      if epoch == stop_before:
        raise _StopBefore()

  resumed_from = None
  try:
    _, _, resumed_from = training.fit(model, ds, None, epochs=epochs, output_dir=str(tmp_path),
                                      extra_callbacks=[Interrupt()])
  except _StopBefore:
    pass
  return model.get_weights(), resumed_from


def test_xla_training_is_repeatable_and_resumes_exactly(tmp_path):
  """XLA needs TF's op determinism off (common/training.compile_options): the same seed
  must still give the same weights, and an interrupted run resumed from its backup must
  end where an uninterrupted one does."""
  whole, _ = _xla_fit(tmp_path / "whole", epochs=4)
  again, _ = _xla_fit(tmp_path / "again", epochs=4)
  assert all(np.array_equal(a, b) for a, b in zip(whole, again))
  _xla_fit(tmp_path / "killed", epochs=4, stop_before=2)
  resumed, resumed_from = _xla_fit(tmp_path / "killed", epochs=4)
  assert resumed_from == 2
  assert all(np.allclose(a, b, rtol=RESUME_TOLERANCE, atol=0) for a, b in zip(whole, resumed))
