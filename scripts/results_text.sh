#!/usr/bin/env bash
# Re-measures the committed figures of examples/text_classifier.py (`make results-text`): both
# variants on the bundled balanced tweets (offline), 10 epochs, seeds 42 (the default; folder
# without suffix), 1 and 2: the test set is the same for every seed, the validation share,
# initial weights and shuffling change. IMDB reviews need tensorflow-datasets' download and are
# not measured here; with internet:
#   $PY examples/text_classifier.py --dataset=imdb_reviews --data_source=tfds \
#     --output_dir=results/text_classifier/document-imdb_reviews-tfds
set -euo pipefail
PY=${PY:-.venv/bin/python}
cd "$(dirname "$0")/.."
out=results/text_classifier
for variant in document large_vocab; do
  for seed in 42 1 2; do
    suffix=$([ "$seed" = 42 ] || echo "-seed$seed")
    "$PY" examples/text_classifier.py --variant=$variant --dataset=tweets --data_source=bundled \
      --seed=$seed --output_dir=$out/$variant-tweets-bundled$suffix
  done
done
