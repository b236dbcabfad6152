"""Builds the README's results table from the committed results/*/*/results.json files.

    python scripts/results_table.py              # print the markdown table
    python scripts/results_table.py --readme README.md   # replace the table between the markers

Every figure in the table is read from a results file, so the README cannot
drift from what was measured.
"""
import argparse
import glob
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START, END = "<!-- results:start -->", "<!-- results:end -->"
COLUMNS = ("example", "variant", "dataset (source)", "train / val / test", "epochs",
           "test accuracy", "baseline", "train samples/s", "wall time", "hardware", "file")


def row(path):
  with open(path) as f:
    r = json.load(f)
  sizes = r.get("sizes", {})
  accuracy = r.get("test", {}).get("accuracy")
  baseline = r.get("majority_baseline")
  timing = r.get("timing", {})
  rel = os.path.relpath(path, ROOT)
  return [
      r["example"], r["variant"], f"{r['dataset']} ({r['source']})",
      " / ".join(str(sizes.get(k, "-")) for k in ("train", "validation", "test")),
      str(r.get("epochs", "-")),
      f"{accuracy:.4f}" if accuracy is not None else "-",
      f"{baseline:.4f}" if baseline is not None else "-",
      f"{timing['train_samples_per_s']:,.0f}" if "train_samples_per_s" in timing else "-",
      f"{timing['fit_s']:.0f} s" if "fit_s" in timing else "-",
      f"{r.get('device', '?')}, TF {r.get('versions', {}).get('tensorflow', '?')}"
      f", load {r.get('load_average_1m', '?')}",
      f"[json]({rel})",
  ]


def table():
  paths = sorted(glob.glob(os.path.join(ROOT, "results", "*", "*", "results.json")))
  lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  lines += ["| " + " | ".join(row(p)) + " |" for p in paths]
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--readme", help="file whose table between the markers is replaced")
  args = parser.parse_args()
  text = table()
  if not args.readme:
    print(text)
    return
  with open(args.readme) as f:
    readme = f.read()
  if START not in readme or END not in readme:
    raise SystemExit(f"{args.readme} lacks the {START} / {END} markers")
  head, rest = readme.split(START, 1)
  _, tail = rest.split(END, 1)
  with open(args.readme, "w") as f:
    f.write(f"{head}{START}\n{text}\n{END}{tail}")
  print(f"updated the results table in {args.readme}")


if __name__ == "__main__":
  main()
