"""The flags every example shares, defined once so every script has the same contract.

Flags whose default depends on the variant (epochs, batch size, ...) default to
None here; `resolve` fills them from the variant's settings without ever
mutating the flag values.
"""
import atexit
import shutil
import tempfile

from absl import flags

STRATEGIES = ("auto", "cpu", "gpu", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_CHOICES = ("auto", "on", "off")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
DATA_SOURCES = ("auto", "tfds", "files", "bundled")
DEFAULT_VALIDATION_SPLIT = 0.1  # for variants that do not set their own


def define_common_flags(fv, *, example, variants, datasets, variant_defaults,
                        modes=("train", "predict")):
  """Defines the shared flags on `fv` (absl FlagValues).

  Args:
    fv: where to define them (`flags.FLAGS` in a script, a fresh FlagValues in tests).
    example: the example's name, used for the default output directory.
    variants: variant names; the first is the default (the tutorial's `document`).
    datasets: dataset names from the registry; the first is the default.
    variant_defaults: {variant: {setting: value}}, quoted in the help strings.
    modes: the modes this example supports.
  """
  doc = variant_defaults[variants[0]]

  def default_note(key):
    value = doc.get(key, DEFAULT_VALIDATION_SPLIT if key == "validation_split" else None)
    return f"default: the variant's setting ({variants[0]}: {value})"

  flags.DEFINE_enum("mode", modes[0], modes, "What to do.", flag_values=fv)
  flags.DEFINE_enum("variant", variants[0], variants,
                    f"Model variant; `{variants[0]}` is the tutorial's original.", flag_values=fv)
  flags.DEFINE_enum("dataset", datasets[0], datasets, "Dataset name.", flag_values=fv)
  flags.DEFINE_enum(
      "data_source", "auto", DATA_SOURCES,
      "Where the data comes from: tfds (download/cache with tensorflow-datasets), files "
      "(your copy under --data_dir), bundled (small real sample in the repo), auto (tfds if "
      "prepared or reachable within seconds, else bundled).", flag_values=fv)
  flags.DEFINE_string("data_dir", None,
                      "For --data_source=files: the folder with your files (required); for tfds: "
                      "the tfds data dir (default: tfds's own, ~/tensorflow_datasets).",
                      flag_values=fv)
  flags.DEFINE_string("output_dir", None,
                      f"Where the run writes model, checkpoints, logs, results.json and plots "
                      f"(default: runs/{example}/<variant>-<dataset>).", flag_values=fv)
  flags.DEFINE_integer("epochs", None, f"Training epochs ({default_note('epochs')}).", flag_values=fv)
  flags.DEFINE_integer("batch_size", None,
                       f"Global batch size, split across replicas ({default_note('batch_size')}).",
                       flag_values=fv)
  flags.DEFINE_float("learning_rate", None,
                     f"Learning rate ({default_note('learning_rate')}).", flag_values=fv)
  flags.DEFINE_enum("optimizer", None, OPTIMIZERS,
                    f"Optimizer ({default_note('optimizer')}).", flag_values=fv)
  flags.DEFINE_integer("seed", 42, "Random seed for splits, shuffling and weights.", flag_values=fv)
  flags.DEFINE_integer("train_size", None,
                       "Use only this many training examples (default: all).", flag_values=fv)
  flags.DEFINE_integer("test_size", None,
                       "Use only this many test examples (default: all).", flag_values=fv)
  flags.DEFINE_float("validation_split", None,
                     "Fraction of the training examples held out for validation, 0 for none "
                     f"({default_note('validation_split')}).", flag_values=fv)
  flags.DEFINE_enum("strategy", "auto", STRATEGIES,
                    "tf.distribute strategy; auto picks TPU, multi-worker (TF_CONFIG set), "
                    "mirrored (>1 GPU), one GPU, then CPU.", flag_values=fv)
  flags.DEFINE_boolean("scale_learning_rate", False,
                       "Multiply the learning rate by the number of replicas in sync (linear "
                       "scaling rule, for when --batch_size grows with the replicas); logged and "
                       "recorded in results.json (default: off, the same learning rate on any "
                       "number of devices).", flag_values=fv)
  flags.DEFINE_enum("precision", "float32", PRECISIONS, "Keras dtype policy.", flag_values=fv)
  flags.DEFINE_enum("jit_compile", "auto", JIT_CHOICES,
                    "XLA compilation of the training step. auto (default): the suite's measured "
                    "choice, on CPU for recurrent models only and Keras' own 'auto' on GPU "
                    "(README, Speed); on: always (pays on long runs: it costs seconds of "
                    "compiling in the first epoch); off: never.", flag_values=fv)
  flags.DEFINE_boolean("early_stopping", False,
                       "Stop when validation loss has not improved for --patience epochs.",
                       flag_values=fv)
  flags.DEFINE_integer("patience", 3, "Epochs without improvement before early stopping.",
                       flag_values=fv)
  flags.DEFINE_string("model", None, "For --mode=predict: path to a saved .keras model.",
                      flag_values=fv)
  flags.DEFINE_boolean("dry_run", False,
                       "One tiny pass (1 epoch, a few batches) to check that everything runs.",
                       flag_values=fv)

  if "tune" in modes:
    from common import tuning  # keras-tuner's flags only where an example can tune
    tuning.define_tuning_flags(fv)

  _positive = lambda v: v is None or v > 0
  for name in ("epochs", "batch_size", "train_size", "test_size", "patience"):
    flags.register_validator(name, _positive, message=f"--{name} must be a positive integer",
                             flag_values=fv)
  flags.register_validator("learning_rate", _positive,
                           message="--learning_rate must be positive", flag_values=fv)
  flags.register_validator("validation_split", lambda v: v is None or 0 <= v < 1,
                           message="--validation_split must be in [0, 1)", flag_values=fv)
  flags.register_multi_flags_validator(
      ["mode", "model"], lambda d: d["mode"] != "predict" or bool(d["model"]),
      message="--mode=predict needs --model=PATH (a .keras file written by a training run)",
      flag_values=fv)
  flags.register_multi_flags_validator(
      ["data_source", "data_dir"], lambda d: d["data_source"] != "files" or bool(d["data_dir"]),
      message="--data_source=files needs --data_dir=FOLDER with your files", flag_values=fv)


def resolve(flags_obj, variant_defaults, *, dry_run_sizes=(256, 128)):
  """The effective settings of a run: flag values where given, else the variant's.

  Returns a plain dict; the flag values themselves are never changed.
  """
  settings = {"validation_split": DEFAULT_VALIDATION_SPLIT, **variant_defaults[flags_obj.variant]}
  for key in ("epochs", "batch_size", "learning_rate", "optimizer", "validation_split"):
    value = getattr(flags_obj, key)
    if value is not None:
      settings[key] = value
  settings["jit_compile"] = flags_obj.jit_compile
  settings["train_size"] = flags_obj.train_size
  settings["test_size"] = flags_obj.test_size
  if flags_obj.dry_run:
    settings["epochs"] = 1
    settings["train_size"] = min(flags_obj.train_size or dry_run_sizes[0], dry_run_sizes[0])
    settings["test_size"] = min(flags_obj.test_size or dry_run_sizes[1], dry_run_sizes[1])
  return settings


def output_dir(flags_obj, example):
  """The run's output folder: --output_dir, else runs/<example>/<variant>-<dataset>[-dry_run].

  In a multi-worker cluster only the chief writes there; every other worker
  gets a private temporary folder, so a shared disk never sees two writers,
  removed when the worker exits.
  """
  from common import strategy  # late: strategy imports TensorFlow
  if not strategy.is_chief():
    scratch = tempfile.mkdtemp(prefix=f"{example}_worker_")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch
  if flags_obj.output_dir:
    return flags_obj.output_dir
  suffix = "-dry_run" if flags_obj.dry_run else ""
  return f"runs/{example}/{flags_obj.variant}-{flags_obj.dataset}{suffix}"
