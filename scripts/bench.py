"""Training-speed benchmark: the suite's input path against the tutorial's way, and the knobs.

    make bench            # full: 3 repetitions of every configuration
    make bench QUICK=1    # a fast look (under 3 minutes on 2 cores)

Every configuration runs in its own process (thread settings must be made
before TensorFlow starts, and peak memory is per process) and trains the MNIST
CNN's document model on the bundled sample. The reference is the tutorial's
snippet as printed: float32 NumPy arrays into `model.fit`, Keras' default batch
size, no pipeline tuning. Ratios to the reference, measured in the same run,
are the headline: absolute rates on a shared machine move with its load.

Figures per configuration (median over repetitions, with min and max):
steady-state training samples/s (epochs after the first), first epoch
(tracing/compilation included), evaluation samples/s, peak resident memory,
and GFLOP/s achieved = samples/s x training FLOPs per sample (counted from the
layers: multiply-adds x 2, times 3 for forward + backward).

Writes results/bench/mnist_cnn.json and prints a markdown table.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

REFERENCE = {"name": "tutorial as printed (NumPy, batch 32)", "input": "numpy", "batch_size": 32}
SUITE_DEFAULT = {"name": "suite default (tf.data uint8, batch 32)", "input": "tfdata",
                 "batch_size": 32}


def configurations(quick):
  """(name, settings) pairs: reference, suite default, then one knob changed at a time."""
  configs = [REFERENCE, SUITE_DEFAULT]
  knobs = [
      {"name": "steps_per_execution=16", "steps_per_execution": 16},
      {"name": "jit_compile=True", "jit_compile": True},
      {"name": "batch 128 (changes results)", "batch_size": 128},
      {"name": "mixed_bfloat16", "precision": "mixed_bfloat16"},
      {"name": "1 intra-op thread", "intra_op_threads": 1},
  ]
  if not quick:
    knobs += [
        {"name": "jit_compile=auto", "jit_compile": "auto"},
        {"name": "batch 64 (changes results)", "batch_size": 64},
        {"name": "batch 256 (changes results)", "batch_size": 256},
        {"name": "no tf.data cache", "cache": False},
        {"name": "2 inter-op threads", "inter_op_threads": 2},
    ]
  return configs + [{**SUITE_DEFAULT, **k} for k in knobs]


def forward_flops(model):
  """Forward-pass FLOPs of one example (2 x multiply-adds of Conv2D and Dense layers)."""
  import numpy as np
  total = 0
  for layer in model.layers:
    kind = type(layer).__name__
    if kind == "Conv2D":
      kh, kw = layer.kernel_size
      cin = layer.input.shape[-1]
      h, w, cout = layer.output.shape[1:]
      total += 2 * kh * kw * cin * h * w * cout
    elif kind == "Dense":
      total += 2 * int(np.prod(layer.input.shape[1:])) * layer.units
  return total


# ---------------------------------------------------------------------------
# Worker: one configuration in this process.


def run_worker(config, epochs, train_size):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf
  if config.get("intra_op_threads"):
    tf.config.threading.set_intra_op_parallelism_threads(config["intra_op_threads"])
  if config.get("inter_op_threads"):
    tf.config.threading.set_inter_op_parallelism_threads(config["inter_op_threads"])
  import keras
  from common import datasets, pipeline
  from common.heads import ClassifierHead
  from examples import mnist_cnn

  keras.utils.set_random_seed(0)
  keras.mixed_precision.set_global_policy(config.get("precision", "float32"))
  splits = datasets.load("mnist", source="bundled", train_size=train_size, validation_split=0)
  head = ClassifierHead(splits.spec.class_names)
  (x, y), (x_test, y_test) = splits.arrays.train, splits.arrays.test
  model = mnist_cnn.build_model("document", head, "mnist")
  model.compile(optimizer="adam", loss=head.loss(), metrics=head.metrics(),
                jit_compile=config.get("jit_compile", False),
                steps_per_execution=config.get("steps_per_execution", 1))
  batch = config["batch_size"]
  if config["input"] == "numpy":  # the tutorial: float arrays scaled in NumPy
    train_args = dict(x=x.astype("float32"), y=y, batch_size=batch)  # model rescales: same cost
    eval_args = dict(x=x_test.astype("float32"), y=y_test, batch_size=batch)
  else:
    make = lambda ds, training: pipeline.make(ds, batch_size=batch, training=training, seed=0,
                                              cache=config.get("cache", True))
    train_args = dict(x=make(splits.train, True))
    eval_args = dict(x=make(splits.test, False))

  pipeline_rate = None
  if config["input"] != "numpy":
    start, n = time.perf_counter(), 0
    for _ in range(2):
      for xb, _ in train_args["x"]:
        n += int(xb.shape[0])
    pipeline_rate = n / (time.perf_counter() - start)

  epoch_times = []

  class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      epoch_times.append(time.perf_counter() - self.t)

  model.fit(**train_args, epochs=epochs, verbose=0, callbacks=[Timer()], shuffle=True)
  start = time.perf_counter()
  _, accuracy = model.evaluate(**eval_args, verbose=0)
  eval_s = time.perf_counter() - start
  steady = statistics.median(epoch_times[1:] or epoch_times)
  rate = len(y) / steady
  flops = 3 * forward_flops(model)
  return {
      "train_samples_per_s": rate, "first_epoch_s": epoch_times[0],
      "eval_samples_per_s": len(y_test) / eval_s, "test_accuracy": accuracy,
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "train_flops_per_sample": flops, "gflops_per_s": rate * flops / 1e9,
      "pipeline_samples_per_s": pipeline_rate,
      "jit_compile_resolved": str(getattr(model, "jit_compile", None)),
  }


# ---------------------------------------------------------------------------
# Driver: every configuration, several repetitions, ratios to the reference.


def measure(config, epochs, train_size):
  proc = subprocess.run(
      [sys.executable, __file__, "--worker", json.dumps(config), f"--epochs={epochs}",
       f"--train_size={train_size}"], capture_output=True, text=True, cwd=ROOT, timeout=900)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode != 0 or not lines:
    raise SystemExit(f"bench: {config['name']} failed:\n{proc.stderr[-2000:]}")
  return json.loads(lines[-1])


def summarise(runs):
  out = {}
  for key in runs[0]:
    values = [r[key] for r in runs if isinstance(r[key], (int, float))]
    if values and len(values) == len(runs):
      out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    else:
      out[key] = runs[0][key]
  return out


def table(rows):
  ref = rows[0]["train_samples_per_s"]["median"]
  lines = ["| configuration | train samples/s (min-max) | x reference | first epoch s | "
           "eval samples/s | GFLOP/s | pipeline samples/s | peak RSS MB | test acc |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    t, pipe = r["train_samples_per_s"], r["pipeline_samples_per_s"]
    pipe = f"{pipe['median']:,.0f}" if isinstance(pipe, dict) else "-"
    lines.append(
        f"| {r['name']} | {t['median']:,.0f} ({t['min']:,.0f}-{t['max']:,.0f}) | "
        f"{t['median'] / ref:.2f} | {r['first_epoch_s']['median']:.1f} | "
        f"{r['eval_samples_per_s']['median']:,.0f} | {r['gflops_per_s']['median']:.1f} | "
        f"{pipe} | {r['peak_rss_mb']['median']:,.0f} | {r['test_accuracy']['median']:.3f} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="1 repetition, fewer knobs")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--train_size", type=int, default=4000)
  parser.add_argument("--out", default=os.path.join(ROOT, "results", "bench", "mnist_cnn.json"))
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(run_worker(json.loads(args.worker), args.epochs, args.train_size)))
    return
  repeats = 1 if args.quick else args.repeats
  epochs = 2 if args.quick else args.epochs
  train_size = 2000 if args.quick else args.train_size
  rows = []
  for config in configurations(args.quick):
    runs = [measure(config, epochs, train_size) for _ in range(repeats)]
    row = {"name": config["name"], "config": config, **summarise(runs)}
    rows.append(row)
    print(f"bench: {config['name']}: {row['train_samples_per_s']['median']:,.0f} samples/s",
          file=sys.stderr)
  from common.results import versions  # noqa: E402  (imports TF: only now)
  from common.strategy import device_description
  report = {"example": "mnist_cnn", "model": "document", "data": "bundled mnist",
            "train_size": train_size, "epochs": epochs, "repeats": repeats,
            "quick": args.quick, "device": device_description(), "versions": versions(),
            "load_average_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "rows": rows}
  if not args.quick:
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(report, f, indent=2)
    print(f"bench: wrote {args.out}", file=sys.stderr)
  print(table(rows))


if __name__ == "__main__":
  main()
