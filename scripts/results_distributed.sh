#!/usr/bin/env bash
# Distribution figures: the same small MNIST run as one process (Keras fit), as one
# MultiWorkerMirroredStrategy worker and as two local workers (the custom loop of
# common/distributed.py), with wall time and samples/s per run, into
# results/distributed/results.json (each run's own results under results/distributed/mnist_cnn/).
# Usage: PY=.venv/bin/python bash scripts/results_distributed.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
EXAMPLE=${EXAMPLE:-examples/mnist_cnn.py}
OUT=results/distributed
ARGS=(--data_source=bundled --train_size=2048 --test_size=1000 --epochs=3 --seed=42)
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-}  # CPU figures unless you export GPUs
mkdir -p "$OUT/mnist_cnn"
WALL=()
run() {  # name, command...
  local name=$1; shift
  rm -rf "$OUT/mnist_cnn/$name"
  local start end
  start=$(date +%s.%N)
  "$@" "${ARGS[@]}" --output_dir="$OUT/mnist_cnn/$name"
  end=$(date +%s.%N)
  WALL+=("$name=$start:$end")
}
run fit-1process "$PY" "$EXAMPLE" --strategy=cpu
run multiworker-1 "$PY" scripts/launch_multiworker.py --workers=1 --timeout=1200 -- "$EXAMPLE"
run multiworker-2 "$PY" scripts/launch_multiworker.py --workers=2 --timeout=1200 -- "$EXAMPLE"
"$PY" - "$OUT" "${WALL[@]}" <<'PYEOF'
import json, os, sys
from common import results, strategy
out, walls = sys.argv[1], dict(w.split("=") for w in sys.argv[2:])
runs = {}
for name, wall in walls.items():
  r = json.load(open(os.path.join(out, "mnist_cnn", name, "results.json")))
  runs[name] = {"workers": {"fit-1process": 1, "multiworker-1": 1, "multiworker-2": 2}[name],
                "training_loop": "keras fit" if name.startswith("fit") else "common.distributed",
                "wall_s": round(float(wall.split(":")[1]) - float(wall.split(":")[0]), 1), "fit_s": r["timing"]["fit_s"],
                "first_epoch_s": r["timing"]["first_epoch_s"],
                "steady_epoch_s": r["timing"]["steady_epoch_s"],
                "train_samples_per_s": r["timing"]["train_samples_per_s"],
                "final_loss": r["final"]["loss"], "test_accuracy": r["test"]["accuracy"]}
summary = {"what": "MNIST document CNN, bundled sample, 2048 train / 1000 test, 3 epochs, "
                   "global batch 32, seed 42; all workers on one machine",
           "device": strategy.device_description(), "versions": results.versions(),
           "command": "make results-distributed (scripts/results_distributed.sh)", "runs": runs}
with open(os.path.join(out, "results.json"), "w") as f:
  json.dump(summary, f, indent=2)
print(json.dumps(runs, indent=2))
PYEOF
