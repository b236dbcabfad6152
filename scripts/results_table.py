"""Builds the README's results table from the committed results/*/*/results.json files.

    python scripts/results_table.py              # print the markdown table
    python scripts/results_table.py --readme README.md   # replace the table between the markers

Every figure in the table is read from a results file, so the README cannot
drift from what was measured. Runs that differ only in their seed share a row
(mean test accuracy, min-max), as in results/REPORT.md.
"""
import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from scripts import report  # noqa: E402  (after the path setup, for `python scripts/...`)

START, END = "<!-- results:start -->", "<!-- results:end -->"
COLUMNS = ("example", "variant", "dataset (source)", "train / val / test", "epochs", "seeds",
           "test accuracy (mean, min-max)", "baseline", "train samples/s", "wall time",
           "hardware", "results file")


def row(members):
  r = members[0]
  sizes = r.get("sizes", {})
  accs = [m["test"]["accuracy"] for m in members]
  spread = f" ({min(accs):.4f}-{max(accs):.4f})" if len(accs) > 1 else ""
  baseline = r.get("majority_baseline")
  rates = [m["timing"]["train_samples_per_s"] for m in members
           if "train_samples_per_s" in m.get("timing", {})]
  walls = [m["timing"]["fit_s"] for m in members if "fit_s" in m.get("timing", {})]
  loads = [m["load_average_1m"] for m in members if "load_average_1m" in m]
  return [
      r["example"], r["variant"], f"{report.dataset_label(r)} ({r['source']})",
      " / ".join(str(sizes.get(k, "-")) for k in ("train", "validation", "test")),
      str(r.get("epochs", "-")), str(len(members)),
      f"{statistics.mean(accs):.4f}{spread}",
      f"{baseline:.4f}" if baseline is not None else "-",
      f"{statistics.median(rates):,.0f}" if rates else "-",
      f"{statistics.mean(walls):.0f} s" if walls else "-",
      f"{r.get('device', '?')}, TF {r.get('versions', {}).get('tensorflow', '?')}"
      + (f", load {max(loads)}" if loads else ""),
      f"[{os.path.basename(os.path.dirname(r['_path']))}]({os.path.relpath(r['_path'], ROOT)})",
  ]


def table(results_dir=os.path.join(ROOT, "results")):
  lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  lines += ["| " + " | ".join(row(members)) + " |"
            for members in report.grouped(report.load(results_dir)).values()]
  return "\n".join(lines)


def replace_between(path, start, end, text):
  """Replaces what stands between the `start` and `end` marker lines of a file with `text`."""
  with open(path, encoding="utf-8") as f:
    readme = f.read()
  if start not in readme or end not in readme:
    raise SystemExit(f"{path} lacks the {start} / {end} markers")
  head, rest = readme.split(start, 1)
  _, tail = rest.split(end, 1)
  with open(path, "w", encoding="utf-8") as f:
    f.write(f"{head}{start}\n{text}\n{end}{tail}")


def update_readme(path, results_dir=os.path.join(ROOT, "results")):
  replace_between(path, START, END, table(results_dir))
  print(f"updated the results table in {path}")


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--readme", help="file whose table between the markers is replaced")
  parser.add_argument("--also", nargs="*", default=[],
                      help="more files to update the same way (the Chinese README)")
  args = parser.parse_args()
  if args.readme:
    for path in [args.readme, *args.also]:
      update_readme(path)
  else:
    print(table())


if __name__ == "__main__":
  main()
