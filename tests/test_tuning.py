"""keras-tuner sweeps: search, resume, results files, retraining the best configuration."""
import csv
import json

import pytest

from common import datasets
from examples import mnist_cnn


@pytest.fixture(scope="module")
def tiny():
  return datasets.load("mnist", source="bundled", train_size=240, test_size=60,
                       validation_split=0.25)


def test_search_writes_best_and_trials_then_resumes_then_retrains(fresh_flags, tmp_path, tiny,
                                                                  capsys):
  args = ["--mode=tune", "--max_trials=2", "--tune_epochs=1", f"--output_dir={tmp_path}",
          "--strategy=cpu"]
  stats = mnist_cnn.run(fresh_flags(mnist_cnn, *args), datasets_override=tiny)
  assert stats["trials"] == 2
  assert 0 <= stats["default_score"] <= 1 and (tmp_path / "tuning.json").exists()
  best = json.loads((tmp_path / "best_hparams.json").read_text())
  assert {"learning_rate", "batch_size", "filters_1", "units", "dropout"} <= set(best)
  with open(tmp_path / "trials.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 and all(r["score"] for r in rows)
  assert float(rows[0]["score"]) >= float(rows[1]["score"])  # ranked best first
  assert "rank" in capsys.readouterr().out

  # the same command resumes: the oracle already holds both trials, none is rerun
  again = mnist_cnn.run(fresh_flags(mnist_cnn, *args), datasets_override=tiny)
  assert again["trials"] == 2 and again["best_hparams"] == stats["best_hparams"]

  # --fresh starts over
  fresh = mnist_cnn.run(fresh_flags(mnist_cnn, *args, "--fresh", "--max_trials=1"),
                        datasets_override=tiny)
  assert fresh["trials"] == 1

  out = tmp_path / "retrain"
  result = mnist_cnn.run(
      fresh_flags(mnist_cnn, "--epochs=1", f"--hparams={tmp_path}/best_hparams.json",
                  f"--output_dir={out}", "--strategy=cpu"), datasets_override=tiny)
  assert result["settings"]["hparams"] == json.loads(
      (tmp_path / "best_hparams.json").read_text())
  assert result["settings"]["batch_size"] == result["settings"]["hparams"]["batch_size"]


def test_default_hyperparameters_are_the_tutorials_model():
  from common.heads import ClassifierHead
  model = mnist_cnn.build_model("document", ClassifierHead(tuple("0123456789")), "mnist")
  assert [type(l).__name__ for l in model.layers] == [
      "Rescaling", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense",
      "Dense"]
  assert model.count_params() == 225_034


def test_bad_hparams_file_is_a_clear_error(fresh_flags, tmp_path, tiny):
  from common.errors import UserError
  (tmp_path / "h.json").write_text("{not json")
  with pytest.raises(UserError, match="not valid JSON"):
    mnist_cnn.run(fresh_flags(mnist_cnn, f"--hparams={tmp_path}/h.json",
                              f"--output_dir={tmp_path}/o"), datasets_override=tiny)
