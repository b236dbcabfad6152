#!/usr/bin/env bash
# Measures examples/cifar_cnn.py on full CIFAR-10 (`make results-cifar`): both variants, default
# seed. Data: your extracted binary (or python) version with CIFAR_DIR=/path/to/cifar-10-batches-bin,
# else tensorflow-datasets (downloads about 160 MB on first use). Not run for the committed
# results: the machines this repository is developed on reach no dataset host.
set -euo pipefail
PY=${PY:-.venv/bin/python}
cd "$(dirname "$0")/.."
if [ -n "${CIFAR_DIR:-}" ]; then
  data=(--data_source=files "--data_dir=$CIFAR_DIR"); source=files
else
  data=(--data_source=tfds); source=tfds
fi
for variant in document augmented; do
  "$PY" examples/cifar_cnn.py --variant=$variant "${data[@]}" \
    --output_dir=results/cifar_cnn/$variant-cifar10-$source
done
