"""Re-measures every committed figure, then writes results/REPORT.md and the README table.

    python scripts/reproduce.py                      # `make reproduce`: everything, into results/
    python scripts/reproduce.py --only=text_classifier,sequence_lstm
    python scripts/reproduce.py --quick              # `make reproduce QUICK=1`: bundled data,
                                                     # one seed, few epochs, into runs/quick/
    python scripts/reproduce.py --list               # print the plan, run nothing

One plan, below, says what is measured: each example's document variant
first, then its best named variant, on every data source this machine has:
the bundled samples always, your own files where present (Debian's
Fashion-MNIST, CIFAR_DIR), tensorflow-datasets where the dataset is already
prepared or its host answers. Short runs use several seeds. Each run is the
example's own command line, so any row of the report can be re-run by hand.
The `make results-<example>` targets run the same plan for one example.
"""
import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FASHION_DIR = os.environ.get("FASHION_DIR", "/usr/share/datasets/fashion-mnist")
CIFAR_DIR = os.environ.get("CIFAR_DIR", "cifar-10-batches-bin")  # as the CIFAR-10 archive unpacks


@dataclasses.dataclass(frozen=True)
class Run:
  example: str
  variant: str
  out: str                  # folder under results/<example>/
  args: tuple = ()
  seed: int = 42
  quick_epochs: int = 1     # epochs in --quick mode; 0 leaves the run out of it
  needs: str = "bundled"    # "bundled", "tfds:<name>", or "dir:<path>"


def seeds(example, variant, out, seed_list, quick_epochs=1, **kw):
  """One run per seed, the default 42 first; only the first is in --quick. `out` may use
  {seed} and {suffix} (empty for seed 42)."""
  return [Run(example, variant, out.format(seed=s, suffix="" if s == 42 else f"-seed{s}"),
              seed=s, quick_epochs=quick_epochs if i == 0 else 0, **kw)
          for i, s in enumerate(seed_list)]


def plan():
  mnist = ("--data_source=bundled",)
  tweets = ("--dataset=tweets", "--data_source=bundled")
  espeak = ("--data_source=bundled",)
  runs = [
      *seeds("mnist_cnn", "document", "document-mnist-bundled-seed{seed}", [42, 1, 2],
             args=mnist),
      *seeds("mnist_cnn", "keras_tutorial", "keras_tutorial-mnist-bundled{suffix}", [42, 1, 2],
             args=mnist),
      *seeds("mnist_cnn", "mlp", "mlp-mnist-bundled{suffix}", [42, 1, 2], args=mnist,
             quick_epochs=0),
      Run("mnist_cnn", "document", "document-fashion_mnist-files",
          ("--dataset=fashion_mnist", "--data_source=files", f"--data_dir={FASHION_DIR}"),
          quick_epochs=0, needs=f"dir:{FASHION_DIR}"),
      Run("mnist_cnn", "document", "document-mnist-tfds", ("--data_source=tfds",),
          quick_epochs=0, needs="tfds:mnist"),
      *[r for v in ("document", "large_vocab")
        for r in seeds("text_classifier", v, v + "-tweets-bundled{suffix}", [42, 1, 2],
                       args=tweets, quick_epochs=2 if v == "document" else 0)],
      *[Run("text_classifier", v, f"{v}-imdb_reviews-tfds",
            ("--dataset=imdb_reviews", "--data_source=tfds"), quick_epochs=0,
            needs="tfds:imdb_reviews") for v in ("document", "large_vocab")],
      *[r for v in ("document", "mel", "conv_lstm") for r in [
          *seeds("speech_lstm", v, v + "-e10-spoken_digit_espeak-bundled{suffix}", [42, 1, 2],
                 args=espeak, quick_epochs=3 if v in ("document", "conv_lstm") else 0),
          *seeds("speech_lstm", v, v + "-e30-seed{seed}-spoken_digit_espeak-bundled",
                 [42, 1, 2, 3, 4], args=espeak + ("--epochs=30",), quick_epochs=0)]],
      *[Run("speech_lstm", v, f"{v}-e30-spoken_digit-tfds",
            ("--dataset=spoken_digit", "--data_source=tfds", "--epochs=30"), quick_epochs=0,
            needs="tfds:spoken_digit") for v in ("document", "conv_lstm")],
      *[Run("cifar_cnn", v, f"{v}-cifar10-files",
            ("--data_source=files", f"--data_dir={CIFAR_DIR}"), quick_epochs=0,
            needs=f"dir:{CIFAR_DIR}") for v in ("document", "augmented")],
      *[Run("cifar_cnn", v, f"{v}-cifar10-tfds", ("--data_source=tfds",), quick_epochs=0,
            needs="tfds:cifar10") for v in ("document", "augmented")],
      Run("sequence_lstm", "document", "document-ordered_pattern-bundled", quick_epochs=2),
      Run("sequence_lstm", "adam", "adam-ordered_pattern-bundled", quick_epochs=2),
      Run("sequence_lstm", "bag_of_embeddings", "bag_of_embeddings-ordered_pattern-bundled",
          quick_epochs=2),
      Run("sequence_lstm", "adam", "adam-ordered_pattern-bundled-length50-pattern5",
          ("--seq_length=50", "--pattern_length=5"), quick_epochs=0),
      *[Run("backprop_scratch", v, f"{v}-xor-generated", ("--seed_sweep=100",),
            quick_epochs=500) for v in ("document", "batch")],
  ]
  return runs


def available(needs, _cache={}):
  """Whether a run's data is on this machine (decided within seconds, offline too)."""
  if needs == "bundled":
    return True
  if needs.startswith("dir:"):
    return os.path.isdir(os.path.join(ROOT, needs[4:]))
  if needs not in _cache:
    from common.datasets import tfds_source  # imports TensorFlow: only when asked
    name = needs.split(":", 1)[1]
    _cache[needs] = tfds_source.is_prepared(name) or tfds_source.download_reachable()
  return _cache[needs]


def why(needs):
  if needs.startswith("tfds:"):
    return f"tfds {needs[5:]} is not prepared and its host does not answer"
  return f"{needs[4:]} is missing (set FASHION_DIR / CIFAR_DIR to your copy)"


def command(run, python, out_root, quick=False, tiny=False):
  out = os.path.join(out_root, run.example, run.out)
  if not os.path.relpath(out, ROOT).startswith(".."):
    out = os.path.relpath(out, ROOT)  # the examples run in ROOT: shorter, and the same anywhere
  args = [python, os.path.join("examples", run.example + ".py"), f"--variant={run.variant}",
          *run.args, f"--output_dir={out}"]
  if run.seed != 42:
    args.append(f"--seed={run.seed}")
  if quick:
    # the later flag wins in absl: reduced epochs, one pass of the seed sweep at most
    args = [a for a in args if not a.startswith(("--epochs=", "--seed_sweep="))]
    args.append(f"--epochs={run.quick_epochs}")
  if tiny:
    args.append("--dry_run")
  return args


def selected(runs, only, quick):
  runs = [r for r in runs if not only or r.example in only]
  if quick:
    runs = [r for r in runs if r.quick_epochs and r.needs == "bundled"]
  return runs


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true",
                      help="bundled data, first seed, reduced epochs, into runs/quick")
  parser.add_argument("--tiny", action="store_true",
                      help="with --quick: add --dry_run to every run (what the tests use)")
  parser.add_argument("--only", default="", help="comma-separated examples (default: all)")
  parser.add_argument("--match", default="",
                      help="only runs whose output folder contains this text, e.g. e10")
  parser.add_argument("--out", default=None,
                      help="results root (default: results/, or runs/quick with --quick)")
  parser.add_argument("--python", default=sys.executable)
  parser.add_argument("--list", action="store_true", help="print the plan and stop")
  parser.add_argument("--no_readme", action="store_true",
                      help="do not rewrite the README table (default for --quick)")
  args = parser.parse_args(argv)
  out_root = os.path.abspath(args.out or os.path.join(ROOT, "runs/quick" if args.quick
                                                     else "results"))
  only = {e for e in args.only.split(",") if e}
  runs = [r for r in selected(plan(), only, args.quick) if args.match in r.out]
  if not runs:
    raise SystemExit(f"reproduce: nothing to run for --only={args.only}")

  done, skipped, failed = [], [], []
  for run in runs:
    cmd = command(run, args.python, out_root, args.quick, args.tiny)
    shown = " ".join(shlex.quote(c) for c in cmd[1:])
    if args.list:
      print(("" if available(run.needs) else f"[skip: {why(run.needs)}] ") + shown)
      continue
    if not available(run.needs):
      skipped.append(run)
      print(f"reproduce: skip {run.example}/{run.out}: {why(run.needs)}", flush=True)
      continue
    print(f"reproduce: {shown}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    (done if proc.returncode == 0 else failed).append(run)
    print(f"reproduce: {run.example}/{run.out} "
          f"{'done' if proc.returncode == 0 else 'FAILED'} in {time.perf_counter() - start:.0f} s",
          flush=True)
  if args.list:
    return 0

  from scripts import report, results_table
  report_path = report.write(out_root)
  print(f"reproduce: {len(done)} runs, {len(skipped)} skipped (data not here), "
        f"{len(failed)} failed; report: {report_path}")
  if not args.quick and not args.no_readme and out_root == os.path.join(ROOT, "results"):
    for name in ("README.md", "README.zh-CN.md"):
      if os.path.exists(os.path.join(ROOT, name)):
        results_table.update_readme(os.path.join(ROOT, name))
  if failed:
    print("reproduce: failed: " + ", ".join(f"{r.example}/{r.out}" for r in failed),
          file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
