"""`make reproduce`: one plan covers every example, and QUICK mode writes a well-formed report."""
import glob
import importlib
import os
import re

from absl import flags

from scripts import reproduce
from tests.conftest import ROOT


def examples():
  return {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "examples", "*.py"))
          if not p.endswith("__init__.py")}


def test_the_plan_covers_every_example_document_variant_first():
  runs = reproduce.plan()
  assert {r.example for r in runs} == examples()
  for example in examples():
    first = next(r for r in runs if r.example == example)
    assert first.variant == "document", example
  outs = [(r.example, r.out) for r in runs]
  assert len(outs) == len(set(outs)), "two runs would write the same folder"


def test_every_planned_command_parses(tmp_path):
  for run in reproduce.plan():
    for quick in (False, True) if run.quick_epochs else (False,):
      cmd = reproduce.command(run, "python", str(tmp_path), quick=quick)
      module = importlib.import_module(f"examples.{run.example}")
      fv = flags.FlagValues()
      module.define_flags(fv)
      fv(["prog", *cmd[2:]])
      assert fv["variant"].value == run.variant


def test_quick_mode_uses_bundled_data_and_covers_every_trainable_example():
  quick = reproduce.selected(reproduce.plan(), only=set(), quick=True)
  assert {r.example for r in quick} == examples() - {"cifar_cnn"}  # no bundled CIFAR sample
  assert all(r.needs == "bundled" and r.quick_epochs > 0 for r in quick)


def test_quick_report_is_produced_and_well_formed(tmp_path):
  out = tmp_path / "quick"
  code = reproduce.main(["--quick", "--tiny", "--only=sequence_lstm,backprop_scratch",
                         f"--out={out}"])
  assert code == 0
  report = (out / "REPORT.md").read_text()
  assert report.startswith("# Reproduction report")
  for section in ("## sequence_lstm", "## backprop_scratch", "## Not measured here"):
    assert section in report
  # every table is rectangular: header, separator and rows have the same number of cells
  for block in re.findall(r"(?:^\|.*\|\n)+", report, flags=re.M):
    rows = block.strip().splitlines()
    assert len(rows) >= 3 and set(rows[1]) <= set("|-"), block
    assert len({len(row.split(" | ")) for row in rows[:1] + rows[2:]}) == 1, block
  assert "Example test predictions" in report  # the LSTM toy shows what it predicted
  # every link in the report points at a file that exists
  for target in re.findall(r"\]\(([^)]+)\)", report):
    assert (out / target).exists(), target
