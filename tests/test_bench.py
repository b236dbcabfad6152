"""The benchmark's plumbing: FLOP counts, the plan, per-device defaults, a tiny run's JSON.

Nothing here is timed: speed is measured by `make bench`, whose JSON holds the ratios.
"""
import json
import os
import re
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from common import strategy as strategy_lib
from common import training
from common.heads import ClassifierHead
from examples import mnist_cnn
from scripts import bench, bench_cases
from tests.conftest import OFFLINE_ENV, ROOT


def test_document_model_flops_are_counted_from_its_layers():
  model = mnist_cnn.build_model("document", ClassifierHead(tuple("0123456789")), "mnist")
  macs = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 128 + 128 * 10
  assert bench_cases.forward_flops(model) == 2 * macs
  assert abs(bench_cases.training_flops(model) / 1e6 - 15.8) < 0.05  # ~15.8 MFLOP per sample


def test_lstm_conv1d_and_per_step_dense_flops():
  model = keras.Sequential([keras.Input((None, 3)), keras.layers.Conv1D(4, 2),
                            keras.layers.LSTM(5, return_sequences=True), keras.layers.Dense(2)])
  # the input leaves the length open: time_steps stands for it (6 steps after the Conv1D)
  conv, lstm, dense = 2 * 2 * 3 * 6 * 4, 2 * 6 * 4 * 5 * (4 + 5), 2 * 6 * 5 * 2
  assert bench_cases.forward_flops(model, time_steps=6) == conv + lstm + dense
  fixed = keras.Sequential([keras.Input((6, 4)), keras.layers.LSTM(5)])
  assert bench_cases.forward_flops(fixed) == 2 * 6 * 4 * 5 * (4 + 5)


def test_cpu_defaults_are_the_measured_ones():
  assert training.device_kind() == "cpu"  # the tests hide GPUs (tests/conftest.py)
  options = training.compile_options()
  assert options == {"jit_compile": False, "steps_per_execution": 32}
  options["steps_per_execution"] = 1  # a copy: callers cannot change the table
  assert training.DEVICE_DEFAULTS["cpu"]["steps_per_execution"] == 32
  # Keras' multi-step loop fails under a distribution strategy: one step per call there
  with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
    assert training.compile_options()["steps_per_execution"] == 1
  # one device: TF's default strategy, not OneDeviceStrategy (which doubled the step cost)
  strategy, chosen = strategy_lib.choose("cpu")
  assert chosen == "cpu" and not isinstance(strategy, tf.distribute.OneDeviceStrategy)
  assert strategy.num_replicas_in_sync == 1


def test_examples_compile_with_the_device_defaults():
  model = mnist_cnn.build_model("document", ClassifierHead(tuple("0123456789")), "mnist")
  model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                **training.compile_options())
  assert model.jit_compile is False and model.steps_per_execution == 32
  for name in bench_cases.EXAMPLES:
    with open(f"{ROOT}/examples/{name}.py") as f:
      assert re.search(r"\*\*training\.compile_options\((model|core), "
                       r"jit=settings\[\"jit_compile\"\]\)", f.read()), name


def test_xla_on_cpu_only_for_recurrent_models_without_convolutions_or_string_ops():
  from tensorflow.python.framework import config as tf_config
  conv = mnist_cnn.build_model("document", ClassifierHead(tuple("0123456789")), "mnist")
  pooled = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(10, 4),
                             keras.layers.GlobalAveragePooling1D(),
                             keras.layers.Dense(1, activation="sigmoid")])
  conv_lstm = keras.Sequential([keras.Input((8, 3)), keras.layers.Conv1D(4, 3),
                                keras.layers.LSTM(4), keras.layers.Dense(1)])
  lstm = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(10, 4),
                           keras.layers.LSTM(4), keras.layers.Dense(1, activation="sigmoid")])
  text = keras.Sequential([keras.Input((), dtype="string"),
                           keras.layers.TextVectorization(max_tokens=10,
                                                          output_sequence_length=4),
                           keras.layers.Embedding(10, 4), keras.layers.GlobalAveragePooling1D(),
                           keras.layers.Dense(1, activation="sigmoid")])
  training.set_seed(0)
  assert training.compile_options(conv)["jit_compile"] is False
  assert training.compile_options(text)["jit_compile"] is False  # XLA has no string ops
  assert training.compile_options(pooled)["jit_compile"] is False  # compile cost > its gain
  assert training.compile_options(conv_lstm)["jit_compile"] is False
  assert tf_config.is_op_determinism_enabled()
  assert training.compile_options(lstm)["jit_compile"] is True
  assert not tf_config.is_op_determinism_enabled()  # Keras allows XLA only without it
  with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
    assert training.compile_options(lstm)["jit_compile"] is False
    assert training.compile_options(lstm, jit="on")["jit_compile"] is False
  # --jit_compile=on|off overrides the choice, on any device
  training.set_seed(0)
  assert training.compile_options(lstm, jit="off")["jit_compile"] is False
  assert tf_config.is_op_determinism_enabled()
  assert training.compile_options(pooled, jit="on")["jit_compile"] is True
  assert not tf_config.is_op_determinism_enabled()
  assert training.compile_options(pooled, kind="gpu", jit="off")["jit_compile"] is False


def test_plan_covers_every_example_and_changes_one_knob_at_a_time():
  quick = bench.plan(bench_cases.EXAMPLES, ["main", "ablations", "scale"], quick=True)
  assert [(r["example"], r["config"]["role"]) for r in quick] == [
      (e, role) for e in bench_cases.EXAMPLES for role in ("reference", "suite")]
  full = bench.plan(bench_cases.EXAMPLES, ["main", "ablations", "scale"], quick=False)
  assert {r["example"] for r in full if r["config"]["role"] == "fast"} == set(
      bench_cases.EXAMPLES)
  for row in (r for r in full if r["group"] in ("ablation", "lever")):
    changed = {k for k in row["config"] if row["config"][k] != bench.SUITE.get(k)}
    changed -= {"name", "role"}
    if row["config"].get("jit_compile") is True:  # Keras allows XLA only without determinism
      changed -= {"determinism"}
    assert len(changed) == 1, row["config"]
  scale = [r for r in full if r["group"] == "scale"]
  assert [r["train_size"] for r in scale[:3]] == [400, 2000, 4000]
  assert [r["overrides"].get("batch_size") for r in scale[3:]] == [64, 128]
  assert set(bench_cases.EXCLUDED) == {"backprop_scratch"}


def test_a_tiny_run_writes_well_formed_json_and_tables(tmp_path):
  out = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, "scripts/bench.py", "--examples=mnist_cnn", "--parts=main",
       "--repeats=1", "--sizes=96,64,2", f"--out={out}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **OFFLINE_ENV})
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["load_average_1m"]["start"] >= 0 and report["versions"]["tensorflow"]
  roles = [r["role"] for r in report["rows"]]
  assert roles == ["reference", "suite", "fast"]
  for row in report["rows"]:
    assert row["train_samples_per_s"]["median"] > 0 and row["peak_rss_mb"]["median"] > 0
    assert row["train_flops_per_sample"] == report["rows"][0]["train_flops_per_sample"]
    assert row["runs"][0]["train_size"] == 96 and len(row["runs"][0]["epoch_s"]) == 2
  ref, suite, fast = report["rows"]
  assert ref["speedup_vs_reference"]["train_samples_per_s"]["median"] == 1.0
  assert ref["strategy"] == suite["strategy"] == "_DefaultDistributionStrategy"
  assert not ref["jit_compile_resolved"] and ref["steps_per_execution"] == 1
  assert suite["steps_per_execution"] == 32 and fast["batch_size"] == 128
  assert ref["pipeline_samples_per_s"] is None and suite["pipeline_samples_per_s"]["median"] > 0
  table = bench.tables(report)
  assert table.count("| mnist_cnn") == 3 and "suite default" in table
  shown = subprocess.run([sys.executable, "scripts/bench.py", "--table", f"--out={out}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert shown.returncode == 0 and shown.stdout.strip() == table


def test_readme_speed_tables_are_what_the_committed_bench_json_generates():
  """The tables between the bench markers are exactly what `make bench-table` writes today."""
  with open(bench.DEFAULT_OUT) as f:
    tables = bench.tables(json.load(f))
  for name in ("README.md", "README.zh-CN.md"):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
      readme = f.read()
    between = readme.split(bench.README_START, 1)[1].split(bench.README_END, 1)[0]
    assert between.strip() == tables.strip(), f"{name}: run `make bench-table`"


def test_step_profile_sums_op_time_by_kind(tmp_path):
  out = tmp_path / "profile.json"
  proc = subprocess.run([sys.executable, f"{ROOT}/scripts/profile_step.py", "--train_size=96",
                         f"--out={out}"], capture_output=True, text=True, timeout=300,
                        env=OFFLINE_ENV)
  assert proc.returncode == 0, proc.stderr[-2000:]
  report = json.loads(out.read_text())
  assert report["steps"] == 3 and report["batch_size"] == 32
  shares = [row["share"] for row in report["by_kind"].values()]
  assert sum(shares) == pytest.approx(1.0, abs=0.01)
  assert {"conv backward", "conv forward", "optimizer update"} <= set(report["by_kind"])
  assert report["heaviest_conv_forward_alone"]["mflop"] == 142.7  # the 2nd: 2*32*11*11*64*3*3*32
