"""PNG plots written by every run: training curves and a confusion matrix."""
import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curves(rows, path, title):
  """Loss and accuracy per epoch (train and validation) from the CSV log rows."""
  metrics = [m for m in ("loss", "accuracy") if rows and m in rows[0]]
  fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
  epochs = [r["epoch"] + 1 for r in rows]
  for ax, metric in zip(axes[0], metrics):
    ax.plot(epochs, [r[metric] for r in rows], marker="o", label="train")
    if f"val_{metric}" in rows[0]:
      ax.plot(epochs, [r[f"val_{metric}"] for r in rows], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def confusion_matrix(matrix, class_names, path, title):
  matrix = np.asarray(matrix)
  n = len(class_names)
  fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
  ax.imshow(matrix, cmap="Blues")
  ax.set_xticks(range(n), class_names, rotation=45, ha="right")
  ax.set_yticks(range(n), class_names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  threshold = matrix.max() / 2 if matrix.size else 0
  for i in range(n):
    for j in range(n):
      ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
              color="white" if matrix[i, j] > threshold else "black")
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
