"""Training-speed benchmark: every trainable example, the suite's way against the tutorial's way.

    make bench                                   # full run: writes results/bench/bench.json
    make bench QUICK=1                           # a fast look, under 3 minutes on 2 cores
    make bench-table                             # README speed tables from results/bench/bench.json
    .venv/bin/python scripts/bench.py --examples=mnist_cnn --parts=main --repeats=5

For each example (scripts/bench_cases.py says how each is built and fed), in
the same run:

* reference: the example's model trained the way the tutorial's snippet does
  it: NumPy arrays into `model.fit`, the variant's batch size, Keras' compile
  defaults, no strategy, no callbacks;
* suite default: the same model on the suite's default path (tf.data pipeline,
  `training.compile_options(model)`, the fixed front-end cached in the pipeline
  for text and speech, checkpoints, backup, TensorBoard, CSV log);
* fast: the fastest configuration found that keeps the accuracy (a variant or
  batch/learning-rate flags, which change results: accuracy is shown beside it);
* for the MNIST CNN, an ablation (one knob changed from the suite default) and
  a scale study (10/50/100% of the training set, 2x/4x the batch); for text,
  speech and sequence, lever rows (their own speed-ups turned off one at a time).

Figures per configuration, median with min and max over repetitions:
steady-state training samples/s (median epoch after the first), the first
epoch apart (tracing included), evaluation samples/s, time to a target test
accuracy, test accuracy, peak resident memory of the process, GFLOP/s achieved
against the FLOPs per trained sample counted from the layers, and what the
input pipeline alone delivers. Each configuration runs in its own process
(thread settings must precede TensorFlow's start; peak memory is per
process). Repetitions are interleaved (every configuration once, then again),
and each ratio is taken against the reference of the same repetition, so load
from other work on a shared machine hits both sides alike: the ratios are the
headline, absolute rates move with the load (recorded in the JSON).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from scripts import bench_cases  # noqa: E402  (no TensorFlow import at module level)

DEFAULT_OUT = os.path.join(ROOT, "results", "bench", "bench.json")
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
QUICK_OUT = os.path.join(ROOT, "runs", "bench", "quick.json")

REFERENCE = {"name": "tutorial's way: NumPy into fit, Keras defaults", "role": "reference",
             "input": "numpy", "compile": "keras"}
SUITE = {"name": "suite default", "role": "suite", "input": "tfdata"}
# The fastest configuration found per example that keeps its accuracy; each changes results.
FAST = {
    "mnist_cnn": {"name": "fast: --batch_size=128 --learning_rate=0.003",
                  "overrides": {"batch_size": 128, "learning_rate": 0.003}},
    "text_classifier": {"name": "fast: --batch_size=128 --learning_rate=0.004",
                        "overrides": {"batch_size": 128, "learning_rate": 0.004}},
    "speech_lstm": {"name": "fast: --variant=mel", "variant": "mel"},
    "sequence_lstm": {"name": "fast: --variant=adam --batch_size=128",
                      "variant": "adam", "overrides": {"batch_size": 128}},
    "cifar_cnn": {"name": "fast: --batch_size=128 (accuracy not measurable on random data)",
                  "overrides": {"batch_size": 128}},
}
# One knob changed from the suite default (MNIST CNN document model).
ABLATIONS = [
    {"name": "steps_per_execution=1", "steps_per_execution": 1},
    {"name": "steps_per_execution=8", "steps_per_execution": 8},
    {"name": "steps_per_execution=128", "steps_per_execution": 128},
    # Keras turns XLA off while op determinism is on, so this row turns both
    {"name": "jit_compile=True (XLA), op determinism off", "jit_compile": True,
     "determinism": False},
    {"name": "jit_compile='auto'", "jit_compile": "auto"},
    {"name": "OneDeviceStrategy (the default before)", "strategy": "one_device"},
    {"name": "no callbacks (no checkpoints, backup, logs)", "callbacks": False},
    {"name": "NumPy input instead of tf.data", "input": "numpy"},
    {"name": "no tf.data cache", "cache": False},
    {"name": "op determinism off", "determinism": False},
    {"name": "mixed_bfloat16", "precision": "mixed_bfloat16"},
    {"name": "mixed_float16", "precision": "mixed_float16"},
    {"name": "1 intra-op thread", "intra_op_threads": 1},
    {"name": "1 inter-op thread", "inter_op_threads": 1},
]
# One knob changed from the suite default on other examples: what each of their speed-ups
# is worth (the front-end cache of common/front_end.py, XLA from compile_options).
LEVERS = {
    "text_classifier": [
        {"name": "text_classifier: TextVectorization inside the trained model (no token "
                 "cache)", "front_end_cache": False},
        {"name": "text_classifier: jit_compile=True (XLA), op determinism off",
         "jit_compile": True, "determinism": False},
    ],
    "speech_lstm": [
        {"name": "speech_lstm: front-end inside the trained model (no feature cache)",
         "front_end_cache": False},
        {"name": "speech_lstm: jit_compile=False (no XLA), op determinism on",
         "jit_compile": False},
    ],
    "sequence_lstm": [
        {"name": "sequence_lstm: jit_compile=False (no XLA), op determinism on",
         "jit_compile": False},
    ],
}
SCALE = [
    {"name": "10% of the training set", "train_fraction": 0.1},
    {"name": "50% of the training set", "train_fraction": 0.5},
    {"name": "100% of the training set", "train_fraction": 1.0},
    {"name": "2x batch (64)", "overrides": {"batch_size": 64}},
    {"name": "4x batch (128)", "overrides": {"batch_size": 128}},
]
# Per example: (train_size, test_size, epochs) for a full and a quick run; None = all.
SIZES = {
    "mnist_cnn": {"full": (None, None, 5), "quick": (1000, 500, 2)},
    "text_classifier": {"full": (None, None, 10), "quick": (2000, 500, 2)},
    "speech_lstm": {"full": (None, None, 10), "quick": (None, None, 2)},
    "sequence_lstm": {"full": (None, None, 20), "quick": (1000, 500, 2)},
    "cifar_cnn": {"full": (5000, 1000, 3), "quick": (500, 200, 2)},
}
ABLATION_EPOCHS = 3
MNIST_TRAIN = 4000  # the bundled sample's training split


def plan(examples, parts, quick, sizes=None):
  """Every row to measure: dicts with example, variant, group, config, sizes, epochs.

  `sizes` (train_size, test_size, epochs) replaces every example's own, for tiny checks.
  """
  rows = []
  kind = "quick" if quick else "full"
  for example in examples:
    train_size, test_size, epochs = sizes or SIZES[example][kind]
    base = dict(example=example, variant="document", train_size=train_size,
                test_size=test_size, epochs=epochs, overrides={})
    if "main" in parts:
      rows.append({**base, "group": "main", "config": REFERENCE})
      rows.append({**base, "group": "main", "config": SUITE})
      if not quick:
        fast = FAST[example]
        rows.append({**base, "group": "main", "variant": fast.get("variant", "document"),
                     "overrides": fast.get("overrides", {}),
                     "config": {**SUITE, "name": fast["name"], "role": "fast"}})
    if "levers" in parts and not quick:
      rows += [{**base, "group": "lever", "config": {**SUITE, **knob, "role": "lever"}}
               for knob in LEVERS.get(example, [])]
    if example != "mnist_cnn" or quick:
      continue
    knob_epochs = epochs if sizes else ABLATION_EPOCHS
    if "ablations" in parts:
      for knob in ABLATIONS:
        rows.append({**base, "group": "ablation", "epochs": knob_epochs,
                     "config": {**SUITE, **knob, "role": "ablation"}})
    if "scale" in parts:
      for step in SCALE:
        size = round((train_size or MNIST_TRAIN) * step.get("train_fraction", 1.0))
        rows.append({**base, "group": "scale", "epochs": knob_epochs, "train_size": size,
                     "overrides": step.get("overrides", {}),
                     "config": {**SUITE, "name": step["name"], "role": "scale"}})
  for example in examples:  # every row's ratio needs its example's reference
    if any(r["example"] == example for r in rows) and not any(
        r["example"] == example and r["config"]["role"] == "reference" for r in rows):
      train_size, test_size, epochs = sizes or SIZES[example][kind]
      rows.insert(0, dict(example=example, variant="document", train_size=train_size,
                          test_size=test_size, epochs=epochs, overrides={}, group="main",
                          config=REFERENCE))
  return rows


# ---------------------------------------------------------------------------
# Worker: one row in this process.


def run_worker(spec):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("EXAMPLES_OFFLINE", "1")
  import tensorflow as tf
  config = spec["config"]
  if config.get("intra_op_threads"):
    tf.config.threading.set_intra_op_parallelism_threads(config["intra_op_threads"])
  if config.get("inter_op_threads"):
    tf.config.threading.set_inter_op_parallelism_threads(config["inter_op_threads"])
  case = bench_cases.load_case(spec["example"], spec["variant"], train_size=spec["train_size"],
                               test_size=spec["test_size"], seed=spec.get("seed", 42),
                               overrides=spec["overrides"])
  return bench_cases.train(case, config, spec["epochs"], seed=spec.get("seed", 42))


# ---------------------------------------------------------------------------
# Driver: interleaved repetitions, summaries, ratios.


def measure(spec):
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                        capture_output=True, text=True, cwd=ROOT, timeout=1800)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode != 0 or not lines:
    raise SystemExit(f"bench: {spec['example']} / {spec['config']['name']} failed:\n"
                     f"{proc.stderr[-3000:]}")
  return json.loads(lines[-1])


def spread(values):
  values = [v for v in values if v is not None]
  if not values:
    return None
  return {"median": statistics.median(values), "min": min(values), "max": max(values),
          "n": len(values)}


SUMMARISED = ("train_samples_per_s", "train_samples_per_cpu_s", "first_epoch_s", "eval_samples_per_s", "test_accuracy",
              "peak_rss_mb", "gflops_per_s", "pipeline_samples_per_s", "load_average_1m")


def summarise(row, runs, references):
  """Median/min/max of each figure, and ratios to the reference of the same repetition."""
  out = {k: spread([r[k] for r in runs]) for k in SUMMARISED}
  out["time_to_target_s"] = spread([(r["time_to_target"] or {}).get("seconds") for r in runs])
  out["epochs_to_target"] = spread([(r["time_to_target"] or {}).get("epochs") for r in runs])
  out["target_reached"] = sum(r["time_to_target"] is not None for r in runs)
  first = runs[0]
  for key in ("train_flops_per_sample", "train_size", "test_size", "batch_size",
              "jit_compile_resolved", "steps_per_execution", "strategy"):
    out[key] = first[key]
  ratios = {"train_samples_per_s": [], "train_samples_per_cpu_s": [], "eval_samples_per_s": [],
            "first_epoch_s": [], "time_to_target_s": []}
  for rep, run in enumerate(runs):
    ref = references.get(rep)
    if ref is None:
      continue
    ratios["train_samples_per_s"].append(run["train_samples_per_s"] / ref["train_samples_per_s"])
    ratios["train_samples_per_cpu_s"].append(run["train_samples_per_cpu_s"] /
                                             ref["train_samples_per_cpu_s"])
    ratios["eval_samples_per_s"].append(run["eval_samples_per_s"] / ref["eval_samples_per_s"])
    ratios["first_epoch_s"].append(ref["first_epoch_s"] / run["first_epoch_s"])
    if run["time_to_target"] and ref["time_to_target"]:
      ratios["time_to_target_s"].append(ref["time_to_target"]["seconds"] /
                                        run["time_to_target"]["seconds"])
  # speed-up over the reference: rates divided, times inverted (>1: faster than the tutorial)
  out["speedup_vs_reference"] = {k: spread(v) for k, v in ratios.items()}
  return {"example": row["example"], "variant": row["variant"], "group": row["group"],
          "name": row["config"]["name"], "role": row["config"]["role"],
          "config": row["config"], "overrides": row["overrides"], "epochs": row["epochs"],
          **out, "runs": runs}


def run_plan(rows, repeats, log=sys.stderr):
  """Runs rows round-robin, `repeats` times (ablation and scale rows fewer); returns results."""
  runs = {i: [] for i in range(len(rows))}
  for rep in range(repeats):
    for i, row in enumerate(rows):
      if rep >= row_repeats(row, repeats):
        continue
      spec = {k: row[k] for k in ("example", "variant", "train_size", "test_size", "epochs",
                                  "overrides", "config")}
      start = time.perf_counter()
      result = measure(spec)
      result["repetition"] = rep
      runs[i].append(result)
      print(f"bench: [{rep + 1}/{repeats}] {row['example']} / {row['config']['name']}: "
            f"{result['train_samples_per_s']:,.0f} samples/s, test accuracy "
            f"{result['test_accuracy']:.4f} ({time.perf_counter() - start:.0f} s, load "
            f"{os.getloadavg()[0]:.2f})", file=log, flush=True)
  out = []
  for i, row in enumerate(rows):
    ref_index = next(j for j, r in enumerate(rows)
                     if r["example"] == row["example"] and r["config"]["role"] == "reference")
    references = {r["repetition"]: r for r in runs[ref_index]}
    out.append(summarise(row, runs[i], references))
  return out


def row_repeats(row, repeats):
  return repeats if row["group"] == "main" else max(1, min(repeats, 2))


# ---------------------------------------------------------------------------
# Markdown tables from the JSON.


def _num(stat, fmt="{:,.0f}", spread_too=False):
  if not stat:
    return "-"
  text = fmt.format(stat["median"])
  if spread_too and stat["n"] > 1:
    text += f" ({fmt.format(stat['min'])}-{fmt.format(stat['max'])})"
  return text


def _speedup(row, key):
  stat = row["speedup_vs_reference"].get(key)
  if not stat:
    return "-"
  text = f"{stat['median']:.2f}x"
  return text + (f" ({stat['min']:.2f}-{stat['max']:.2f})" if stat["n"] > 1 else "")


def _target(row):
  if row["time_to_target_s"] is None:
    return "not reached" if row.get("target") is not None else "-"
  return (f"{row['time_to_target_s']['median']:.1f} s "
          f"({row['epochs_to_target']['median']:.0f} ep)")


def tables(report):
  """The README's speed tables: headline ratios, then the MNIST ablation and scale study."""
  rows = report["rows"]
  out = ["| example | configuration | train samples/s (min-max) | vs tutorial | vs tutorial, "
         "CPU time | first epoch s | vs tutorial | eval samples/s | vs tutorial | time to target "
         "| test accuracy | GFLOP/s (MFLOP/sample) | pipeline samples/s | peak RSS MB |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in (r for r in rows if r["group"] == "main"):
    target = bench_cases.TARGETS.get(r["example"])
    example = r["example"] + (f" (target {target:.0%})" if target else "")
    out.append(
        f"| {example} | {r['name']} | {_num(r['train_samples_per_s'], spread_too=True)} | "
        f"{_speedup(r, 'train_samples_per_s')} | {_speedup(r, 'train_samples_per_cpu_s')} | "
        f"{_num(r['first_epoch_s'], '{:.1f}')} | "
        f"{_speedup(r, 'first_epoch_s')} | {_num(r['eval_samples_per_s'])} | "
        f"{_speedup(r, 'eval_samples_per_s')} | {_target({**r, 'target': target})} | "
        f"{_num(r['test_accuracy'], '{:.4f}')} | {_num(r['gflops_per_s'], '{:.1f}')} "
        f"({r['train_flops_per_sample'] / 1e6:.3g}) | {_num(r['pipeline_samples_per_s'])} | "
        f"{_num(r['peak_rss_mb'])} |")
  for group, title in (("ablation", "MNIST CNN, one knob changed from the suite default"),
                       ("lever", "Other examples, one knob changed from the suite default"),
                       ("scale", "MNIST CNN scale study (suite default path)")):
    chosen = [r for r in rows if r["group"] == group]
    if not chosen:
      continue
    epochs = sorted({r["epochs"] for r in chosen})
    out += ["", f"{title} ({'/'.join(map(str, epochs))} epochs):", "",
            "| configuration | train size | batch | train samples/s | vs tutorial | "
            "vs tutorial, CPU time | first epoch s | test accuracy | peak RSS MB | resolved |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in chosen:
      resolved = (f"jit={r['jit_compile_resolved']}, spe={r['steps_per_execution']}, "
                  f"{r['strategy'].strip('_')}")
      out.append(
          f"| {r['name']} | {r['train_size']:,} | {r['batch_size']} | "
          f"{_num(r['train_samples_per_s'], spread_too=True)} | "
          f"{_speedup(r, 'train_samples_per_s')} | {_speedup(r, 'train_samples_per_cpu_s')} | "
          f"{_num(r['first_epoch_s'], '{:.1f}')} | "
          f"{_num(r['test_accuracy'], '{:.4f}')} | {_num(r['peak_rss_mb'])} | {resolved} |")
  load = report["load_average_1m"]
  out += ["", f"{report['device']}, TF {report['versions']['tensorflow']}, "
          f"{report['repeats']} interleaved repetition(s), 1-minute load {load['start']:.2f} at "
          f"the start, {load['max_seen']:.2f} at most, {load['end']:.2f} at the end; "
          f"{report['date']}. Not benchmarked: "
          + "; ".join(f"{k} ({v})" for k, v in report["excluded"].items()) + "."]
  return "\n".join(out)


def update_readmes(paths, report):
  """Writes the speed tables between the bench markers of each file (the README's)."""
  from scripts import results_table
  for path in paths:
    results_table.replace_between(path, README_START, README_END, tables(report))
    print(f"bench: updated the speed tables in {path}", file=sys.stderr)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true",
                      help="reference and suite default only, small data, 1 repetition")
  parser.add_argument("--repeats", type=int, default=3,
                      help="repetitions of the main rows (ablation and scale rows: up to 2)")
  parser.add_argument("--examples", default=",".join(bench_cases.EXAMPLES))
  parser.add_argument("--parts", default="main,ablations,scale,levers")
  parser.add_argument("--out", help=f"JSON to write (default {DEFAULT_OUT}; with --quick "
                                    f"{QUICK_OUT})")
  parser.add_argument("--sizes", help="TRAIN,TEST,EPOCHS for every example instead of its "
                                      "own (a tiny check: --sizes=64,32,2)")
  parser.add_argument("--table", action="store_true",
                      help="print the markdown tables of an existing JSON (--out) and stop")
  parser.add_argument("--readme", nargs="*", default=[],
                      help="files whose speed tables (between the bench markers) are "
                           "replaced with the tables of the JSON written or read")
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(run_worker(json.loads(args.worker))))
    return
  out_path = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
  if args.table:
    with open(out_path) as f:
      report = json.load(f)
    print(tables(report))
    update_readmes(args.readme, report)
    return
  examples = [e for e in args.examples.split(",") if e]
  unknown = set(examples) - set(bench_cases.EXAMPLES)
  if unknown:
    parser.error(f"unknown example(s) {sorted(unknown)}; known: {bench_cases.EXAMPLES}")
  repeats = 1 if args.quick else args.repeats
  sizes = tuple(int(v) for v in args.sizes.split(",")) if args.sizes else None
  rows = plan(examples, args.parts.split(","), args.quick, sizes)
  load_start, start = os.getloadavg()[0], time.perf_counter()
  results = run_plan(rows, repeats)
  loads = [run["load_average_1m"] for r in results for run in r["runs"]]
  from common.results import versions  # noqa: E402  (imports TensorFlow: only now)
  from common.strategy import device_description
  report = {
      "command": " ".join(["scripts/bench.py", *sys.argv[1:]]), "quick": args.quick,
      "repeats": repeats, "device": device_description(), "cpu_count": os.cpu_count(),
      "versions": versions(), "python": platform.python_version(),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "wall_s": round(time.perf_counter() - start, 1),
      "load_average_1m": {"start": round(load_start, 2), "max_seen": round(max(loads), 2),
                          "end": round(os.getloadavg()[0], 2)},
      "datasets": {e: bench_cases.DATASETS[e] for e in examples},
      "targets": {e: bench_cases.TARGETS[e] for e in examples},
      "excluded": bench_cases.EXCLUDED, "rows": results,
  }
  os.makedirs(os.path.dirname(out_path), exist_ok=True)
  with open(out_path, "w") as f:
    json.dump(report, f, indent=2)
  print(f"bench: wrote {out_path} in {report['wall_s']:.0f} s", file=sys.stderr)
  print(tables(report))
  update_readmes(args.readme, report)


if __name__ == "__main__":
  main()
