#!/usr/bin/env bash
# Re-measures the committed figures of examples/sequence_lstm.py (`make results-sequence`):
# the three variants on the default task (length 20, pattern 1..2..3, seed 42), and the
# adam variant on a harder task (length 50, pattern 1..2..3..4..5).
set -euo pipefail
PY=${PY:-.venv/bin/python}
cd "$(dirname "$0")/.."
out=results/sequence_lstm
for variant in document adam bag_of_embeddings; do
  "$PY" examples/sequence_lstm.py --variant=$variant --output_dir=$out/$variant-ordered_pattern-bundled
done
"$PY" examples/sequence_lstm.py --variant=adam --seq_length=50 --pattern_length=5 \
  --output_dir=$out/adam-ordered_pattern-bundled-length50-pattern5
