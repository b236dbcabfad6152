"""Writes REPORT.md from results files: every figure, the claim it answers, and a verdict.

    python scripts/report.py                                  # results/ -> results/REPORT.md
    python scripts/report.py --results runs/quick --out runs/quick/REPORT.md

Runs that differ only in their seed are grouped: the report gives their mean,
minimum and maximum. A figure is set against the tutorial's own claim where
the tutorial makes one, and against the suite's target otherwise; a claim the
measurement contradicts is marked so, and figures that could not be measured
here are listed with the command that measures them.
"""
import argparse
import collections
import glob
import json
import os
import statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (example, variant, dataset) -> (who claims it, text, minimum test accuracy, epochs it is
# claimed for[, maximum test accuracy]); minimum None: no lower bound; dataset None: any.
# The dataset is as dataset_label() writes it (a generated task with its settings). A run
# with other epochs is shown, not judged.
CLAIMS = {
    ("mnist_cnn", "document", "mnist"): (
        "tutorial 003 §5.4", "test accuracy above 90% after 5 epochs", 0.90, 5),
    ("mnist_cnn", "document", "fashion_mnist"): (
        "suite target", "at least 90% after 5 epochs", 0.90, 5),
    ("text_classifier", "document", "tweets"): (
        "suite target", "at least 80% after 10 epochs", 0.80, 10),
    ("sequence_lstm", "adam", "ordered_pattern, length 20, pattern 3"): (
        "suite target", "the LSTM at least 95% after 20 epochs", 0.95, 20),
    ("sequence_lstm", "bag_of_embeddings", "ordered_pattern, length 20, pattern 3"): (
        "suite target", "the order-blind baseline stays near chance (50%): at most 60% "
        "after 20 epochs", None, 20, 0.60),
    ("speech_lstm", "document", "spoken_digit_espeak"): (
        "suite target", "at least 70% after 30 epochs", 0.70, 30),
    ("speech_lstm", "mel", "spoken_digit_espeak"): (
        "suite target", "at least 88% after 30 epochs", 0.88, 30),
    ("speech_lstm", "conv_lstm", "spoken_digit_espeak"): (
        "suite target", "at least 92% after 30 epochs", 0.92, 30),
    ("backprop_scratch", "document", "xor"): (
        "suite target", "XOR solved (all four outputs on the right side of 0.5, "
        "i.e. accuracy 100%) after 5000 epochs", 1.0, 5000),
    ("backprop_scratch", "batch", "xor"): (
        "suite target", "XOR solved (all four outputs on the right side of 0.5, "
        "i.e. accuracy 100%) after 5000 epochs", 1.0, 5000),
}

# Flags that define a generated task, written after its dataset's name (from the run's
# flags): a run with other settings is another task, judged only by a claim made for it.
TASK_FLAGS = {"ordered_pattern": (("seq_length", "length"), ("pattern_length", "pattern"))}

NOT_MEASURED = [
    ("mnist_cnn on full MNIST (tfds)", "about 99% expected",
     ".venv/bin/python examples/mnist_cnn.py --data_source=tfds"),
    ("text_classifier on IMDB reviews (tfds)",
     "about 75-85% expected, not measured here (basis: TensorFlow's \"Word embeddings\" "
     "tutorial, Embedding(16) + GlobalAveragePooling1D at 10,000 words and length 100: about "
     "78%; here 1,000 words)",
     ".venv/bin/python examples/text_classifier.py --dataset=imdb_reviews --data_source=tfds"),
    ("speech_lstm on the Free Spoken Digit Dataset (tfds)",
     "no figure to expect from a comparable published run (FSDD's own split, recordings "
     "0-4 of every speaker, tests voices heard in training; here the speaker theo is held out)",
     ".venv/bin/python examples/speech_lstm.py --dataset=spoken_digit --data_source=tfds"),
    ("cifar_cnn on CIFAR-10 (tfds)",
     "no figure to expect from a comparable published run (PyTorch's \"Training a "
     "classifier\": 54% with a smaller CNN, SGD 0.001 with momentum 0.9; here no momentum, "
     "which learns slowly)",
     ".venv/bin/python examples/cifar_cnn.py --data_source=tfds"),
    ("cifar_cnn augmented on CIFAR-10 (tfds)",
     "about 70-75% expected, not measured here (basis: TensorFlow's \"Convolutional Neural "
     "Network\" tutorial, a similar 32/64/64-filter CNN, Adam, 10 epochs, no augmentation: "
     "over 70%)",
     ".venv/bin/python examples/cifar_cnn.py --variant=augmented --data_source=tfds"),
]


def load(results_dir):
  runs = []
  for path in sorted(glob.glob(os.path.join(results_dir, "*", "*", "results.json"))):
    with open(path) as f:
      r = json.load(f)
    if "test" in r and "accuracy" in r.get("test", {}):
      r["_path"] = path
      runs.append(r)
  return runs


def dataset_label(r):
  """The run's dataset, with the settings of a generated task read from its flags."""
  flags = r.get("flags", {})
  settings = [f"{label} {flags[name]}" for name, label in TASK_FLAGS.get(r["dataset"], ())
              if flags.get(name) is not None]
  return ", ".join([r["dataset"], *settings])


def group_key(r):
  """Runs with equal keys differ only in their seed (and where they were written)."""
  sizes = r.get("sizes", {})
  # flags left unset (None/False) are dropped: a flag added later must not split old runs
  other_flags = json.dumps({k: v for k, v in r.get("flags", {}).items()
                            if k not in ("seed", "output_dir") and v not in (None, False)},
                           sort_keys=True, default=str)
  return (r["example"], r["variant"], dataset_label(r), r["source"], r.get("epochs"),
          sizes.get("train"), sizes.get("test"), other_flags)


def sort_key(key):
  example, variant, dataset, source, epochs, *_ = key
  return (example, variant != "document", variant, dataset, source, epochs or 0)


def claim_for(example, variant, dataset):
  return CLAIMS.get((example, variant, dataset)) or CLAIMS.get((example, variant, None))


def verdict(claim, values, epochs):
  if not claim:
    return "no claim"
  _, _, minimum, claimed_epochs, *rest = claim
  maximum = rest[0] if rest else None
  if claimed_epochs and epochs != claimed_epochs:
    return f"not judged ({epochs} epochs, the claim is for {claimed_epochs})"

  def within(value):
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
  if all(within(v) for v in values):
    return "holds"
  if within(statistics.mean(values)):
    return "holds on average, not for every seed"
  return "**contradicted**"


def link(path, name, out_dir):
  target = os.path.join(os.path.dirname(path), name)
  return f"[{name[:-4].replace('_', ' ')}]({os.path.relpath(target, out_dir)})" \
      if os.path.exists(target) else ""


def predictions_section(items):
  """A few test predictions of each run that recorded some (the LSTM toys)."""
  lines = []
  for (_, variant, dataset, source, epochs, *_), members in items:
    shown = members[0].get("example_predictions")
    if shown:
      run = os.path.basename(os.path.dirname(members[0]["_path"]))
      lines += [f"Example test predictions of `{run}` ({epochs} epochs):",
                "", "| input | label | predicted | probability |", "|---|---|---|---|"]
      lines += [f"| `{p['input']}` | {p['label']} | {p['predicted']}"
                f"{'' if p['predicted'] == p['label'] else ' (wrong)'} | {p['probability']:.3f} |"
                for p in shown]
      lines.append("")
  return lines


def grouped(runs):
  """Runs that differ only in their seed, together, in the order first seen."""
  groups = {}
  for r in sorted(runs, key=lambda r: (r.get("flags", {}).get("seed") != 42, r["_path"])):
    groups.setdefault(group_key(r), []).append(r)  # the default seed's run first: its plots
  return collections.OrderedDict(sorted(groups.items(), key=lambda item: sort_key(item[0])))


def render(runs, out_dir):
  groups = grouped(runs)
  lines = ["# Reproduction report", "",
           "Generated by `scripts/report.py` from the results files beside it "
           "(`make reproduce` re-measures them, then rewrites this file). Accuracy is test "
           "accuracy; runs that differ only in their seed are grouped (mean, min-max).", ""]
  by_example = collections.OrderedDict()
  for key, members in groups.items():
    by_example.setdefault(key[0], []).append((key, members))
  for example, items in by_example.items():
    lines += [f"## {example}", "",
              "| variant | dataset (source) | train / test | epochs | seeds | test accuracy "
              "(mean, min-max) | claim | verdict | wall time | hardware | plots |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (ex, variant, dataset, source, epochs, n_train, n_test, _), members in items:
      accs = [m["test"]["accuracy"] for m in members]
      claim = claim_for(ex, variant, dataset)
      first = members[0]
      spread = f" ({min(accs):.4f}-{max(accs):.4f})" if len(accs) > 1 else ""
      wall = statistics.mean(m.get("timing", {}).get("fit_s", 0) for m in members)
      hardware = (f"{first.get('device', '?')}; TF {first['versions']['tensorflow']}, "
                  f"Keras {first['versions']['keras']}")
      plots = " ".join(filter(None, [link(first["_path"], "training_curves.png", out_dir),
                                     link(first["_path"], "confusion_matrix.png", out_dir)]))
      lines.append(
          f"| {variant} | {dataset} ({source}) | {n_train} / {n_test} | {epochs} | "
          f"{len(members)} | {statistics.mean(accs):.4f}{spread} | "
          f"{(claim[0] + ': ' + claim[1]) if claim else '-'} | {verdict(claim, accs, epochs)} | "
          f"{wall:.0f} s | {hardware} | {plots} |")
    lines.append("")
    lines += predictions_section(items)
  lines += ["## Not measured here", "",
            "These machines reach no dataset host; with internet access these commands "
            "measure them:", "", "| what | expected | command |", "|---|---|---|"]
  lines += [f"| {what} | {expected} | `{command}` |" for what, expected, command in NOT_MEASURED]
  return "\n".join(lines) + "\n"


def write(results_dir, out=None):
  """Renders <results_dir>/*/*/results.json into `out` (default <results_dir>/REPORT.md)."""
  out = out or os.path.join(results_dir, "REPORT.md")
  runs = load(results_dir)
  if not runs:
    raise SystemExit(f"report: no results.json under {results_dir}/*/*/")
  with open(out, "w", encoding="utf-8") as f:
    f.write(render(runs, os.path.dirname(os.path.abspath(out))))
  print(f"report: {len(runs)} runs -> {out}")
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--results", default=os.path.join(ROOT, "results"))
  parser.add_argument("--out", default=None, help="default: <results>/REPORT.md")
  args = parser.parse_args()
  write(args.results, args.out)


if __name__ == "__main__":
  main()
