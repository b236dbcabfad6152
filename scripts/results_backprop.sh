#!/usr/bin/env bash
# Re-measures the committed figures of examples/backprop_scratch.py (`make results-backprop`).
# Each run trains from the default seed 42 and sweeps seeds 0-99 to count how many solve XOR.
set -euo pipefail
PY=${PY:-.venv/bin/python}
cd "$(dirname "$0")/.."
for variant in document batch; do
  "$PY" examples/backprop_scratch.py --variant=$variant --seed_sweep=100 \
    --output_dir=results/backprop_scratch/$variant-xor-generated
done
