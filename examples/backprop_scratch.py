"""Title: Backpropagation by hand: a 2-2-1 sigmoid network learns XOR

Reproduces the worked example of tutorial 004 §4.5 (../shared/tutorials): a
network with 2 inputs, a hidden layer of 2 sigmoid units and 1 sigmoid output,
mean-squared error, and the explicit backpropagation formulas

    z1 = x W1 + b1,  a1 = sigma(z1),  z2 = a1 W2 + b2,  y_hat = sigma(z2)
    delta2 = (y_hat - y) * sigma'(z2)
    delta1 = (delta2 W2^T) * sigma'(z1)
    dW2 = a1^T delta2,  db2 = delta2,  dW1 = x^T delta1,  db1 = delta1
    W -= alpha * dW,  b -= alpha * db

implemented with plain float64 TensorFlow tensors: the training step uses no
autodiff. Every hand-computed gradient is checked against `tf.GradientTape` on
the same weights and the same loss; the largest difference is recorded.

The original's settings: one example x of shape (1, 2) per update (so the
`document` variant updates after every example, online SGD), sigmoid
everywhere, MSE, plain gradient descent. It gives no data, learning rate,
initialisation or number of steps; here:

* data: the four XOR points, the classic task a 2-2-1 network can solve and a
  linear model cannot (the tutorial says "linear classification", for which no
  hidden layer would be needed);
* initial weights and biases uniform in [-1, 1) from --seed (NumPy);
* `document`: online updates in a new seeded order every epoch, learning rate
  1.0, 5,000 epochs; `batch`: the same formulas summed over all four examples,
  one update per epoch (full-batch gradient descent), learning rate 4.0 (on
  the summed loss, so 1.0 per example).

Where this version differs, and why:

* The loss convention. The tutorial's delta2 = (y_hat - y) sigma'(z2) is the
  exact gradient of L = 1/2 * sum_i (y_hat_i - y_i)^2, not of
  MSE = 1/N * sum_i (y_hat_i - y_i)^2 (whose gradient carries an extra factor
  2/N). This script keeps the tutorial's formulas unchanged and therefore
  trains on (and checks against autodiff with) L = 1/2 * sum of squared
  errors over the examples of an update. The two differ only by the constant
  factor 2/N, i.e. by a rescaled learning rate; the reported `mse` is the
  ordinary mean (1/N) sum of squares over the four points, for reading.
* The tutorial writes column vectors (W1x x, W2h^T delta2); this script stores
  examples as rows, as Keras does, so the same formulas appear transposed
  (x W1, delta2 W2^T) and a batch of rows sums the per-example gradients.
* There is no Keras model and no tf.distribute strategy: the point is the
  arithmetic, so the common strategy/precision/data-source flags are not
  offered; --seed, --epochs, --learning_rate, --output_dir and --dry_run mean
  what they mean in every other example.

Figures (results/backprop_scratch/<variant>-xor-generated/results.json,
written by `make results-backprop` on a 2-core CPU, TF 2.21):

* hand-written and GradientTape gradients agree to 5.6e-17 (document) and
  4.2e-17 (batch), checked at the initial weights and every 500 epochs, on
  the full batch and on each single example (the tests assert 1e-6);
* from the default seed 42 both variants solve XOR: outputs 0.017, 0.981,
  0.982, 0.023 for 00, 01, 10, 11 (document, final MSE 3.7e-4; batch 6.6e-5);
* not every start succeeds: 81 of seeds 0-99 solve XOR with `document`, 78
  with `batch`; the others stall in the well-known local minima of a 2-2-1
  sigmoid network (`seed_sweep` in results.json lists them).

Usage:
  python examples/backprop_scratch.py                    # document variant, seed 42
  python examples/backprop_scratch.py --variant=batch --epochs=3000
  python examples/backprop_scratch.py --seed_sweep=100   # how many seeds solve XOR
"""
import os

from common import cli  # before anything imports TensorFlow: keeps its start-up log quiet

import csv
import time

from absl import flags
import numpy as np
import tensorflow as tf

from common import plots  # noqa: F401  (selects the file-only matplotlib backend)
from common import results
from common import training
from common.errors import UserError, exit_on_user_error

import matplotlib.pyplot as plt  # noqa: E402  (after common.plots chose the backend)

EXAMPLE = "backprop_scratch"
DATASET = "xor"
DTYPE = tf.float64
X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
Y_XOR = np.array([[0], [1], [1], [0]], dtype=np.float64)
PARAM_NAMES = ("W1", "b1", "W2", "b2")
GRADIENT_TOLERANCE = 1e-6

VARIANTS = {
    "document": dict(update="online", epochs=5000, learning_rate=1.0),
    "batch": dict(update="batch", epochs=5000, learning_rate=4.0),
}
DRY_RUN_EPOCHS = 10


def define_flags(fv=flags.FLAGS):
  """The common flags that apply to a network without data source or strategy."""
  doc = VARIANTS["document"]
  flags.DEFINE_enum("variant", "document", tuple(VARIANTS),
                    "`document`: one example per update, as the tutorial's x of shape (1, 2); "
                    "`batch`: one update per epoch from all four examples.", flag_values=fv)
  flags.DEFINE_integer("epochs", None,
                       f"Passes over the 4 XOR examples (default: the variant's setting "
                       f"(document: {doc['epochs']})).", flag_values=fv)
  flags.DEFINE_float("learning_rate", None,
                     f"alpha in W -= alpha * dW (default: the variant's setting "
                     f"(document: {doc['learning_rate']})).", flag_values=fv)
  flags.DEFINE_integer("seed", 42, "Random seed for the initial weights and the example order.",
                       flag_values=fv)
  flags.DEFINE_string("output_dir", None,
                      f"Where results.json and the plots go (default: "
                      f"runs/{EXAMPLE}/<variant>-{DATASET}).", flag_values=fv)
  flags.DEFINE_boolean("dry_run", False, f"Train {DRY_RUN_EPOCHS} epochs only.", flag_values=fv)
  flags.DEFINE_integer("seed_sweep", 0,
                       "Also train from seeds 0..N-1 and report how many solve XOR.",
                       flag_values=fv)
  for name in ("epochs", "learning_rate"):
    flags.register_validator(name, lambda v: v is None or v > 0,
                             message=f"--{name} must be positive", flag_values=fv)
  flags.register_validator("seed_sweep", lambda v: v >= 0,
                           message="--seed_sweep must be 0 or a positive count", flag_values=fv)


def resolve(flags_obj):
  """The run's settings: flag values where given, else the variant's (flags never mutated)."""
  settings = dict(VARIANTS[flags_obj.variant])
  for key in ("epochs", "learning_rate"):
    if getattr(flags_obj, key) is not None:
      settings[key] = getattr(flags_obj, key)
  if flags_obj.dry_run:
    settings["epochs"] = min(settings["epochs"], DRY_RUN_EPOCHS)
  return settings


# ## The network and its hand-written gradients


def init_params(seed):
  """W1 (2, 2), b1 (2,), W2 (2, 1), b2 (1,), uniform in [-1, 1)."""
  rng = np.random.default_rng(seed)
  shapes = {"W1": (2, 2), "b1": (2,), "W2": (2, 1), "b2": (1,)}
  return {name: tf.constant(rng.uniform(-1.0, 1.0, shapes[name]), dtype=DTYPE)
          for name in PARAM_NAMES}


def sigmoid(z):
  return 1.0 / (1.0 + tf.exp(-z))


def sigmoid_prime(z):
  s = sigmoid(z)
  return s * (1.0 - s)


def forward(params, x):
  """Returns z1, a1, z2, y_hat for rows of inputs x (n, 2)."""
  z1 = tf.matmul(x, params["W1"]) + params["b1"]
  a1 = sigmoid(z1)
  z2 = tf.matmul(a1, params["W2"]) + params["b2"]
  return z1, a1, z2, sigmoid(z2)


def loss_fn(y_hat, y):
  """L = 1/2 * sum of squared errors: the loss whose gradient the tutorial's formulas are."""
  return 0.5 * tf.reduce_sum(tf.square(y_hat - y))


def hand_gradients(params, x, y):
  """The tutorial's formulas, with examples as rows; a batch sums per-example gradients."""
  z1, a1, z2, y_hat = forward(params, x)
  delta2 = (y_hat - y) * sigmoid_prime(z2)                               # (n, 1)
  delta1 = tf.matmul(delta2, params["W2"], transpose_b=True) * sigmoid_prime(z1)  # (n, 2)
  return {
      "W2": tf.matmul(a1, delta2, transpose_a=True),                     # a1^T delta2
      "b2": tf.reduce_sum(delta2, axis=0),
      "W1": tf.matmul(x, delta1, transpose_a=True),                      # x^T delta1
      "b1": tf.reduce_sum(delta1, axis=0),
  }


def autodiff_gradients(params, x, y):
  """The same gradients from tf.GradientTape, for checking only (never used to train)."""
  variables = {name: tf.Variable(value) for name, value in params.items()}
  with tf.GradientTape() as tape:
    _, _, _, y_hat = forward(variables, x)
    loss = loss_fn(y_hat, y)
  grads = tape.gradient(loss, variables)
  return {name: tf.convert_to_tensor(g) for name, g in grads.items()}


def gradient_difference(params, x, y):
  """Largest |hand - autodiff| over every parameter, for the batch and each single example."""
  worst = 0.0
  for rows in [slice(None)] + [slice(i, i + 1) for i in range(len(x))]:
    hand = hand_gradients(params, x[rows], y[rows])
    auto = autodiff_gradients(params, x[rows], y[rows])
    for name in PARAM_NAMES:
      worst = max(worst, float(tf.reduce_max(tf.abs(hand[name] - auto[name]))))
  return worst


def update(params, grads, learning_rate):
  """W -= alpha * dW for every parameter, as new tensors."""
  return {name: params[name] - learning_rate * grads[name] for name in PARAM_NAMES}


# ## Train


@tf.function(reduce_retracing=True)
def train_epochs(params, x, y, learning_rate, orders, online):
  """Runs len(orders) epochs in one graph; returns params and each epoch's loss, MSE, accuracy.

  `orders` (epochs, 4) holds each epoch's example order for online updates.
  Only the hand-written formulas run here: no tape, no optimizer.
  """
  n_epochs = tf.shape(orders)[0]
  losses = tf.TensorArray(DTYPE, size=n_epochs)
  mses = tf.TensorArray(DTYPE, size=n_epochs)
  accuracies = tf.TensorArray(DTYPE, size=n_epochs)
  for epoch in tf.range(n_epochs):
    if online:  # one update per example, as the tutorial's x of shape (1, 2)
      xs, ys = tf.gather(x, orders[epoch]), tf.gather(y, orders[epoch])
      for i in range(x.shape[0]):
        params = update(params, hand_gradients(params, xs[i:i + 1], ys[i:i + 1]),
                        learning_rate)
    else:  # one update from the summed gradients of all examples
      params = update(params, hand_gradients(params, x, y), learning_rate)
    _, _, _, y_hat = forward(params, x)
    losses = losses.write(epoch, loss_fn(y_hat, y))
    mses = mses.write(epoch, tf.reduce_mean(tf.square(y_hat - y)))
    right = tf.cast(tf.equal(y_hat >= 0.5, y >= 0.5), DTYPE)
    accuracies = accuracies.write(epoch, tf.reduce_mean(right))
  return params, losses.stack(), mses.stack(), accuracies.stack()


def evaluate(params, x, y):
  _, _, _, y_hat = forward(params, tf.constant(x, DTYPE))
  y_hat = y_hat.numpy()
  return {"loss": float(0.5 * np.sum((y_hat - y) ** 2)), "mse": float(np.mean((y_hat - y) ** 2)),
          "accuracy": float(np.mean((y_hat >= 0.5) == (y >= 0.5)))}, y_hat


def train(settings, seed, check_every=None):
  """Trains from `seed`; returns params, per-epoch history and the largest gradient difference.

  With check_every, training pauses every check_every epochs to compare the
  hand-written gradients with tf.GradientTape's on the current weights.
  """
  params = init_params(seed)
  x, y = tf.constant(X_XOR, DTYPE), tf.constant(Y_XOR, DTYPE)
  lr = tf.constant(settings["learning_rate"], DTYPE)
  epochs = settings["epochs"]
  order_rng = np.random.default_rng(seed + 1)
  orders = np.stack([order_rng.permutation(len(X_XOR)) for _ in range(epochs)])
  max_diff = gradient_difference(params, x, y) if check_every else None
  history = []
  chunk = check_every or epochs
  for start in range(0, epochs, chunk):
    params, losses, mses, accuracies = train_epochs(params, x, y, lr,
                                        tf.constant(orders[start:start + chunk]),
                                        settings["update"] == "online")
    history += [{"epoch": start + i, "loss": float(l), "mse": float(m), "accuracy": float(a)}
                for i, (l, m, a) in enumerate(zip(losses.numpy(), mses.numpy(),
                                                  accuracies.numpy()))]
    if check_every:
      max_diff = max(max_diff, gradient_difference(params, x, y))
  return params, history, max_diff


def solved(params):
  _, y_hat = evaluate(params, X_XOR, Y_XOR)
  return bool(np.all((y_hat >= 0.5) == (Y_XOR >= 0.5)))


# ## Plots and files


def plot_loss_curve(history, path, title):
  fig, ax = plt.subplots(figsize=(6, 3.6))
  ax.semilogy([r["epoch"] + 1 for r in history], [r["mse"] for r in history])
  ax.set_xlabel("epoch")
  ax.set_ylabel("MSE on the 4 XOR points (log scale)")
  ax.grid(alpha=0.3, which="both")
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_decision_surface(params, path, title):
  grid = np.linspace(-0.5, 1.5, 201)
  gx, gy = np.meshgrid(grid, grid)
  points = np.stack([gx.ravel(), gy.ravel()], axis=1)
  _, _, _, out = forward(params, tf.constant(points, DTYPE))
  fig, ax = plt.subplots(figsize=(5, 4.4))
  surface = ax.contourf(gx, gy, out.numpy().reshape(gx.shape), levels=20, cmap="RdBu_r",
                        vmin=0, vmax=1)
  ax.contour(gx, gy, out.numpy().reshape(gx.shape), levels=[0.5], colors="k")
  fig.colorbar(surface, ax=ax, label="network output")
  for (a, b), target in zip(X_XOR, Y_XOR[:, 0]):
    ax.scatter(a, b, s=120, c="red" if target else "blue", edgecolors="k", zorder=3)
  ax.set_xlabel("x1")
  ax.set_ylabel("x2")
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_log(history, path):
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows({k: f"{v:.8g}" if isinstance(v, float) else v for k, v in row.items()}
                     for row in history)


def run(flags_obj, datasets_override=None, strategy_override=None):
  """Trains on XOR with hand-written backprop; returns the stats dict.

  datasets_override and strategy_override are accepted for the suite's common
  signature; this example has neither data source nor strategy.
  """
  del datasets_override, strategy_override
  settings = resolve(flags_obj)
  suffix = "-dry_run" if flags_obj.dry_run else ""
  output_dir = flags_obj.output_dir or f"runs/{EXAMPLE}/{flags_obj.variant}-{DATASET}{suffix}"
  training.check_writable(output_dir)
  check_every = max(1, settings["epochs"] // 10)

  start = time.perf_counter()
  params, history, max_diff = train(settings, flags_obj.seed, check_every=check_every)
  fit_seconds = time.perf_counter() - start
  if not np.isfinite(history[-1]["loss"]):
    raise UserError(f"training diverged (loss {history[-1]['loss']}); lower --learning_rate")

  print(f"loss curve ({settings['update']} updates, learning rate {settings['learning_rate']}):")
  for row in history:
    if (row["epoch"] + 1) % check_every == 0 or row["epoch"] == 0:
      print(f"  epoch {row['epoch'] + 1:6d}  loss {row['loss']:.6f}  mse {row['mse']:.6f}")
  test_metrics, y_hat = evaluate(params, X_XOR, Y_XOR)
  print("truth table (x1 x2 -> target, output):")
  table = []
  for (a, b), target, out in zip(X_XOR, Y_XOR[:, 0], y_hat[:, 0]):
    right = (out >= 0.5) == (target >= 0.5)
    print(f"  {a:.0f} {b:.0f} -> {target:.0f}  {out:.4f}  {'ok' if right else 'WRONG'}")
    table.append({"x": [int(a), int(b)], "target": int(target), "output": float(out)})
  is_solved = solved(params)
  print(f"hand vs GradientTape gradients: largest difference {max_diff:.3e} "
        f"(tolerance {GRADIENT_TOLERANCE:g})")

  sweep = None
  if flags_obj.seed_sweep:
    wins = [s for s in range(flags_obj.seed_sweep) if solved(train(settings, s)[0])]
    sweep = {"seeds": flags_obj.seed_sweep, "solved": len(wins),
             "unsolved_seeds": sorted(set(range(flags_obj.seed_sweep)) - set(wins))}
    print(f"seed sweep: {len(wins)} of {flags_obj.seed_sweep} seeds solve XOR")

  title = f"{EXAMPLE} {flags_obj.variant} on XOR (seed {flags_obj.seed})"
  plot_loss_curve(history, os.path.join(output_dir, "loss_curve.png"), title)
  plot_decision_surface(params, os.path.join(output_dir, "decision_surface.png"), title)
  write_log(history, os.path.join(output_dir, "training_log.csv"))
  # results.write plots loss/accuracy per epoch; about 100 points are enough for that figure
  plotted = history[::max(1, len(history) // 100)]
  stats = results.write(
      output_dir, example=EXAMPLE, variant=flags_obj.variant, dataset=DATASET,
      source="generated", sizes={"train": 4, "validation": 0, "test": 4}, settings=settings,
      history=plotted, test_metrics=test_metrics,
      timing={"fit_s": round(fit_seconds, 2),
              "epochs_per_s": round(settings["epochs"] / fit_seconds, 1)},
      flags_obj=flags_obj,
      extra={"epochs": len(history), "final": history[-1], "solved": is_solved,
             "loss_convention": "L = 1/2 * sum of squared errors over the update's examples",
             "max_gradient_difference": max_diff, "gradient_tolerance": GRADIENT_TOLERANCE,
             "gradient_checks": "hand vs tf.GradientTape at the initial weights and every "
                                f"{check_every} epochs, full batch and each single example",
             "truth_table": table,
             "weights": {name: params[name].numpy().tolist() for name in PARAM_NAMES},
             "seed_sweep": sweep})
  print(f"XOR {'solved' if is_solved else 'NOT solved'}; results in {output_dir}/results.json")
  return stats


def main(_):
  with exit_on_user_error():
    run(flags.FLAGS)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
