#!/usr/bin/env bash
# Re-measures the committed figures of examples/speech_lstm.py (`make results-speech`):
# every variant on the bundled espeak-ng sample (test = 12 voice settings never heard in
# training), at the tutorial's 10 epochs (seed 42) and at 30 epochs (seeds 42, 1, 2, 3, 4).
# The real Free Spoken Digit Dataset needs a download (not measured here):
#   $PY examples/speech_lstm.py --dataset=spoken_digit --data_source=tfds --epochs=30 \
#     --output_dir=results/speech_lstm/document-e30-spoken_digit-tfds
set -euo pipefail
PY=${PY:-.venv/bin/python}
cd "$(dirname "$0")/.."
out=results/speech_lstm
data=spoken_digit_espeak-bundled
for variant in document mel conv_lstm; do
  "$PY" examples/speech_lstm.py --variant=$variant --data_source=bundled \
    --output_dir=$out/$variant-e10-$data
  for seed in 42 1 2 3 4; do
    "$PY" examples/speech_lstm.py --variant=$variant --data_source=bundled --epochs=30 \
      --seed=$seed --output_dir=$out/$variant-e30-seed$seed-$data
  done
done
