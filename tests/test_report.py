"""REPORT.md and the README table are generated from results files, seeds grouped."""
import json
import os
import shutil

import pytest

from scripts import report, results_table


def fake_run(folder, seed, accuracy, variant="document", dataset="mnist"):
  folder.mkdir(parents=True)
  (folder / "training_curves.png").write_bytes(b"png")
  (folder / "results.json").write_text(json.dumps({
      "example": "mnist_cnn", "variant": variant, "dataset": dataset, "source": "bundled",
      "sizes": {"train": 4000, "validation": 0, "test": 1000}, "epochs": 5,
      "test": {"accuracy": accuracy, "loss": 0.1}, "timing": {"fit_s": 20.0},
      "device": "CPU x2", "versions": {"tensorflow": "2.21.0", "keras": "3.15.1"},
      "flags": {"seed": seed}}))


def test_seeds_are_grouped_and_claims_judged(tmp_path):
  for seed, acc in ((1, 0.97), (2, 0.86)):
    fake_run(tmp_path / "mnist_cnn" / f"document-mnist-bundled-seed{seed}", seed, acc)
  fake_run(tmp_path / "mnist_cnn" / "mlp-mnist-bundled", 1, 0.91, variant="mlp")
  text = report.render(report.load(str(tmp_path)), str(tmp_path))
  assert "| document | mnist (bundled) | 4000 / 1000 | 5 | 2 | 0.9150 (0.8600-0.9700) |" in text
  assert "holds on average, not for every seed" in text
  assert "| mlp | mnist (bundled) | 4000 / 1000 | 5 | 1 | 0.9100 |" in text
  assert "## Not measured here" in text and "--data_source=tfds" in text
  assert "(mnist_cnn/document-mnist-bundled-seed1/training_curves.png)" in text


def test_contradicted_claims_are_shown(tmp_path):
  fake_run(tmp_path / "mnist_cnn" / "document-mnist-bundled", 1, 0.5)
  assert "**contradicted**" in report.render(report.load(str(tmp_path)), str(tmp_path))


def test_readme_table_lists_every_committed_result():
  table = results_table.table()
  assert table.count("\n") >= 2
  assert "mnist_cnn" in table and "results/mnist_cnn/" in table


@pytest.mark.parametrize("name", ["README.md", "README.zh-CN.md"])
def test_readme_table_is_what_the_committed_results_generate(name, tmp_path):
  """The table between the markers is exactly what `make results-table` writes today."""
  readme = os.path.join(results_table.ROOT, name)
  if not os.path.exists(readme):
    pytest.skip(f"no {name}")
  copy = tmp_path / name
  shutil.copy(readme, copy)
  results_table.update_readme(str(copy))  # what `make results-table` does to the file
  with open(readme, encoding="utf-8") as f:
    committed = f.read()
  assert copy.read_text(encoding="utf-8") == committed, (
      f"{name}'s results table differs from the committed results files; run `make results-table`")


def test_a_claim_is_judged_only_at_the_epochs_it_is_made_for(tmp_path):
  fake_run(tmp_path / "mnist_cnn" / "document-mnist-bundled", 1, 0.5)
  run = tmp_path / "mnist_cnn" / "document-mnist-bundled" / "results.json"
  r = json.loads(run.read_text())
  run.write_text(json.dumps({**r, "epochs": 1}))  # a QUICK run: 1 epoch, not the claimed 5
  text = report.render(report.load(str(tmp_path)), str(tmp_path))
  assert "not judged (1 epochs, the claim is for 5)" in text and "contradicted" not in text
