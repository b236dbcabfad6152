"""results.json: what a run measured, on what data, hardware and software."""
import datetime
import json
import os
import platform
import statistics

import keras
import numpy as np
import tensorflow as tf

from common import plots
from common.strategy import device_description


def confusion(y_true, y_pred, num_classes):
  matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
  np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
  return matrix


def throughput(n_train, epoch_seconds):
  """Training samples/s: steady state (epochs after the first) and first epoch apart."""
  if not epoch_seconds:
    return {}
  steady = epoch_seconds[1:] or epoch_seconds
  return {"first_epoch_s": round(epoch_seconds[0], 3),
          "steady_epoch_s": round(statistics.median(steady), 3),
          "train_samples_per_s": round(n_train / statistics.median(steady), 1)}


def example_predictions(inputs, y_true, y_pred, confidence, class_names, n=6):
  """A few test predictions for the report: the first right ones and the first wrong ones.

  `inputs` describes each test example in a line (a token string, a clip number).
  """
  right = [i for i in range(len(y_true)) if y_true[i] == y_pred[i]][:n - n // 2]
  wrong = [i for i in range(len(y_true)) if y_true[i] != y_pred[i]][:n // 2]
  return [{"input": str(inputs[i]), "label": class_names[int(y_true[i])],
           "predicted": class_names[int(y_pred[i])],
           "probability": round(float(confidence[i]), 4)} for i in sorted(right + wrong)]


def versions():
  return {"python": platform.python_version(), "tensorflow": tf.__version__,
          "keras": keras.__version__, "numpy": np.__version__}


def own_flags(flags_obj):
  """The suite's flag values (absl's own logging/app flags left out)."""
  return {f.name: f.value for module, defined in flags_obj.flags_by_module_dict().items()
          if not module.startswith("absl.") for f in defined}


def write(output_dir, *, example, variant, dataset, source, sizes, settings, history,
          test_metrics, timing, flags_obj, extra=None, confusion_matrix=None, class_names=None):
  """Writes results.json and the plots; returns the stats dict."""
  best = {}
  for key in ("val_accuracy", "accuracy"):
    values = [row[key] for row in history if key in row]
    if values:
      best[f"best_{key}"] = max(values)
  stats = {
      "example": example, "variant": variant, "dataset": dataset, "source": source,
      "sizes": sizes, "epochs": len(history), "settings": settings,
      "test": {k: float(v) for k, v in test_metrics.items()},
      "final": history[-1] if history else {}, **best,
      "timing": timing, "device": device_description(), "versions": versions(),
      # other work on the machine slows a run down: record how busy it was
      "load_average_1m": round(os.getloadavg()[0], 2),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "flags": own_flags(flags_obj),
      **(extra or {}),
  }
  title = f"{example} {variant} on {dataset} ({source})"
  if history:
    plots.training_curves(history, os.path.join(output_dir, "training_curves.png"), title)
  if confusion_matrix is not None:
    stats["confusion_matrix"] = np.asarray(confusion_matrix).tolist()
    plots.confusion_matrix(confusion_matrix, class_names,
                           os.path.join(output_dir, "confusion_matrix.png"), title)
  with open(os.path.join(output_dir, "results.json"), "w") as f:
    json.dump(stats, f, indent=2, default=str)
  return stats
