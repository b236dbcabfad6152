"""Hand-written backprop: its gradients equal autodiff's, and it solves XOR from the default seed."""
import csv
import json

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from examples import backprop_scratch as bp
from tests.conftest import cli


def random_case(seed, n):
  rng = np.random.default_rng(seed)
  params = {name: tf.constant(rng.normal(0.0, 2.0, value.shape), tf.float64)
            for name, value in bp.init_params(seed).items()}
  x = tf.constant(rng.normal(0.0, 1.5, (n, 2)), tf.float64)
  y = tf.constant(rng.uniform(0.0, 1.0, (n, 1)), tf.float64)
  return params, x, y


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 1), (2, 4), (3, 7)])
def test_every_hand_gradient_equals_gradient_tape(seed, n):
  params, x, y = random_case(seed, n)
  hand = bp.hand_gradients(params, x, y)
  auto = bp.autodiff_gradients(params, x, y)
  assert set(hand) == set(auto) == set(bp.PARAM_NAMES)
  for name in bp.PARAM_NAMES:
    assert hand[name].dtype == tf.float64 and hand[name].shape == params[name].shape, name
    np.testing.assert_allclose(hand[name].numpy(), auto[name].numpy(), rtol=0, atol=1e-6,
                               err_msg=name)
  assert bp.gradient_difference(params, x, y) < 1e-6


def test_the_loss_convention_is_half_the_sum_of_squares_not_the_mse():
  """The tutorial's delta2 has no 2/N: it is the gradient of 1/2 * SSE; MSE's is 2/N times it."""
  params, x, y = random_case(5, 4)
  hand = bp.hand_gradients(params, x, y)
  variables = {k: tf.Variable(v) for k, v in params.items()}
  with tf.GradientTape() as tape:
    mse = tf.reduce_mean(tf.square(bp.forward(variables, x)[3] - y))
  mse_grads = tape.gradient(mse, variables)
  for name in bp.PARAM_NAMES:
    np.testing.assert_allclose(hand[name].numpy() * 2 / 4, mse_grads[name].numpy(), atol=1e-12)


def test_training_step_uses_the_hand_formulas():
  """One online epoch by train() equals four explicit W -= alpha * dW updates."""
  settings = dict(update="online", epochs=1, learning_rate=0.7)
  params, _, _ = bp.train(settings, seed=3)
  expected = bp.init_params(3)
  order = np.random.default_rng(4).permutation(4)  # train() orders epochs with seed + 1
  for i in order:
    x, y = tf.constant(bp.X_XOR[i:i + 1]), tf.constant(bp.Y_XOR[i:i + 1])
    expected = bp.update(expected, bp.hand_gradients(expected, x, y), 0.7)
  for name in bp.PARAM_NAMES:
    np.testing.assert_allclose(params[name].numpy(), expected[name].numpy(), atol=1e-12)


def make_flags(*argv):
  fv = flags.FlagValues()
  bp.define_flags(fv)
  fv(["prog", *argv])
  return fv


def test_default_run_solves_xor_and_writes_its_files(tmp_path):
  stats = bp.run(make_flags(f"--output_dir={tmp_path}"))
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["solved"] and stats["solved"]
  assert saved["epochs"] == 5000 and saved["settings"]["learning_rate"] == 1.0
  assert saved["max_gradient_difference"] < 1e-6
  assert saved["test"]["accuracy"] == 1.0
  for row in saved["truth_table"]:
    assert (row["output"] >= 0.5) == bool(row["target"])
  for name in ("loss_curve.png", "decision_surface.png", "training_curves.png"):
    assert (tmp_path / name).stat().st_size > 1000, name
  with open(tmp_path / "training_log.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 5000 and float(rows[-1]["mse"]) < float(rows[0]["mse"])


def test_batch_variant_dry_run_and_seed_sweep(tmp_path):
  stats = bp.run(make_flags("--variant=batch", "--dry_run", "--seed_sweep=2",
                            f"--output_dir={tmp_path}"))
  assert stats["epochs"] == bp.DRY_RUN_EPOCHS and stats["settings"]["update"] == "batch"
  assert stats["seed_sweep"]["seeds"] == 2
  assert stats["max_gradient_difference"] < 1e-6


def test_bad_flags_are_refused():
  with pytest.raises(flags.IllegalFlagValueError, match="must be positive"):
    make_flags("--learning_rate=0")


def test_command_line(tmp_path):
  proc = cli("backprop_scratch.py", "--dry_run", f"--output_dir={tmp_path}")
  assert proc.returncode == 0, proc.stderr
  assert "truth table" in proc.stdout and "largest difference" in proc.stdout
  assert (tmp_path / "results.json").exists()
