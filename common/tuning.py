"""Hyper-parameter search with keras-tuner, shared by every trainable example.

An example hands over a keras-tuner HyperModel built from the same builder that
trains its document variant (one model definition); this module makes the
tuner, runs or resumes the search, and writes what it found:

  <output_dir>/tuning/          keras-tuner's project (oracle state: rerun to resume)
  <output_dir>/best_hparams.json
  <output_dir>/trials.csv       trial id, hyper-parameters, score, status

Distributed search is keras-tuner's own: start a chief and workers with
KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set
(scripts/launch_tuning.py does it on one machine).
"""
import csv
import json
import os
import sys

from absl import flags
import keras_tuner as kt

from common.errors import UserError

TUNERS = ("random", "bayesian", "hyperband")


def define_tuning_flags(fv):
  flags.DEFINE_enum("tuner", "random", TUNERS, "For --mode=tune: keras-tuner search algorithm.",
                    flag_values=fv)
  flags.DEFINE_integer("max_trials", 6, "For --mode=tune: trials to run (random, bayesian).",
                       flag_values=fv)
  flags.DEFINE_integer("executions_per_trial", 1,
                       "For --mode=tune: models trained per trial (averaged).", flag_values=fv)
  flags.DEFINE_integer("tune_epochs", 2, "For --mode=tune: epochs per trial (hyperband: the "
                       "most epochs a trial gets).", flag_values=fv)
  flags.DEFINE_string("objective", "val_accuracy",
                      "For --mode=tune: metric to optimise (val_* maximised if accuracy, "
                      "minimised if loss).", flag_values=fv)
  flags.DEFINE_boolean("fresh", False,
                       "For --mode=tune: discard an earlier search in the output dir and start "
                       "over (default: resume it).", flag_values=fv)
  flags.DEFINE_string("hparams", None,
                      "For --mode=train: a best_hparams.json written by --mode=tune; trains that "
                      "configuration on train+validation and tests it once.", flag_values=fv)
  for name in ("max_trials", "executions_per_trial", "tune_epochs"):
    flags.register_validator(name, lambda v: v > 0, message=f"--{name} must be positive",
                             flag_values=fv)


def objective(name):
  direction = "min" if "loss" in name else "max"
  return kt.Objective(name, direction=direction)


def make_tuner(hypermodel, flags_obj, output_dir):
  common = dict(objective=objective(flags_obj.objective), directory=output_dir,
                project_name="tuning", overwrite=flags_obj.fresh, seed=flags_obj.seed,
                executions_per_trial=flags_obj.executions_per_trial)
  if flags_obj.tuner == "hyperband":
    return kt.Hyperband(hypermodel, max_epochs=flags_obj.tune_epochs, **common)
  cls = kt.BayesianOptimization if flags_obj.tuner == "bayesian" else kt.RandomSearch
  return cls(hypermodel, max_trials=flags_obj.max_trials, **common)


def search(hypermodel, train_ds, val_ds, flags_obj, output_dir):
  """Runs (or resumes) the search; writes best_hparams.json and trials.csv; returns stats."""
  if val_ds is None:
    raise UserError("--mode=tune needs validation data; set --validation_split above 0")
  tuner = make_tuner(hypermodel, flags_obj, output_dir)
  done = len(tuner.oracle.trials)
  if done:
    print(f"tune: resuming the search in {output_dir}/tuning ({done} trial(s) already there; "
          "--fresh starts over)", file=sys.stderr)
  tuner.search(train_ds, validation_data=val_ds, epochs=flags_obj.tune_epochs, verbose=2)
  rows = trial_rows(tuner)
  if not rows:
    raise UserError("the search finished no trial; see the log above")
  best = tuner.get_best_hyperparameters(1)[0].values
  with open(os.path.join(output_dir, "best_hparams.json"), "w") as f:
    json.dump(best, f, indent=2, sort_keys=True)
  write_trials_csv(rows, os.path.join(output_dir, "trials.csv"))
  print_ranking(rows, flags_obj.objective)
  default = default_score(hypermodel, train_ds, val_ds, flags_obj)
  print(f"the tutorial's own settings score {default:.4f} on the same data and epochs")
  stats = {"trials": len(rows), "best_hparams": best, "best_score": rows[0]["score"],
           "default_score": default, "objective": flags_obj.objective,
           "tuner": flags_obj.tuner, "tune_epochs": flags_obj.tune_epochs, "ranking": rows}
  with open(os.path.join(output_dir, "tuning.json"), "w") as f:
    json.dump(stats, f, indent=2, default=str)
  return stats


def default_score(hypermodel, train_ds, val_ds, flags_obj):
  """The objective reached by the default hyper-parameters (the tutorial's model), scored
  like a trial: its best epoch, same data and epochs."""
  hp = hyperparameters()
  model = hypermodel.build(hp)
  history = hypermodel.fit(hp, model, train_ds, validation_data=val_ds,
                           epochs=flags_obj.tune_epochs, verbose=0).history
  values = history.get(flags_obj.objective)
  if not values:
    raise UserError(f"--objective={flags_obj.objective} is not a metric of this model; "
                    f"choose one of {', '.join(sorted(history))}")
  return (min if "loss" in flags_obj.objective else max)(values)


def trial_rows(tuner):
  """All trials, best first (trials without a score last)."""
  rows = []
  for trial in tuner.oracle.trials.values():
    rows.append({"trial_id": trial.trial_id, "status": str(trial.status),
                 "score": trial.score, **trial.hyperparameters.values})
  sign = -1 if tuner.oracle.objective.direction == "max" else 1
  rows.sort(key=lambda r: (r["score"] is None, sign * (r["score"] or 0)))
  return rows


def write_trials_csv(rows, path):
  keys = ["trial_id", "score", "status"]
  keys += sorted({k for r in rows for k in r} - set(keys))
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)


def print_ranking(rows, objective_name):
  print(f"{'rank':>4}  {'trial':>6}  {objective_name:>12}  hyper-parameters")
  for rank, r in enumerate(rows, 1):
    hps = {k: v for k, v in r.items() if k not in ("trial_id", "status", "score")}
    score = f"{r['score']:.4f}" if r["score"] is not None else r["status"]
    print(f"{rank:>4}  {r['trial_id']:>6}  {score:>12}  {json.dumps(hps, sort_keys=True)}")


def load_hparams(path):
  """A best_hparams.json as keras-tuner HyperParameters values (a dict)."""
  try:
    with open(path) as f:
      values = json.load(f)
  except OSError as e:
    raise UserError(f"cannot read --hparams {path}: {e.strerror}") from e
  except ValueError as e:
    raise UserError(f"--hparams {path} is not valid JSON: {e}") from e
  if not isinstance(values, dict):
    raise UserError(f"--hparams {path} must hold a JSON object of hyper-parameter values")
  return values


def hyperparameters(values=None):
  """HyperParameters whose lookups return `values` where given, else each default."""
  hp = kt.HyperParameters()
  for name, value in (values or {}).items():
    hp.Fixed(name, value)
  return hp


class HyperModel(kt.HyperModel):
  """Compiles an example's `build(hp)` and batches its data per trial.

  Learning rate and batch size are searched here for every example (around the
  variant's own values); the example's `build(hp)` holds the rest of its
  search space next to its layers. `batches(ds, batch_size, training)` is the
  example's input pipeline.
  """

  def __init__(self, build, head, settings, batches):
    super().__init__()
    # (keras-tuner's HyperModel uses self._build itself: keep clear of that name)
    self.build_model, self.head, self.settings, self.batches = build, head, settings, batches

  def build(self, hp):
    from common import training  # late: keeps this module light for --help
    lr = learning_rate(hp, self.settings)
    model = self.build_model(hp)
    model.compile(optimizer=training.make_optimizer(self.settings["optimizer"], lr),
                  loss=self.head.loss(), metrics=self.head.metrics())
    return model

  def fit(self, hp, model, train, validation_data=None, **kwargs):
    size = batch_size(hp, self.settings)
    kwargs.setdefault("shuffle", False)  # the tf.data pipeline shuffles, seeded
    return model.fit(self.batches(train, size, True),
                     validation_data=self.batches(validation_data, size, False), **kwargs)


def learning_rate(hp, settings):
  base = settings["learning_rate"]
  return hp.Choice("learning_rate", sorted({base / 3, base, base * 3}), default=base)


def batch_size(hp, settings):
  base = settings["batch_size"]
  return hp.Choice("batch_size", sorted({max(8, base // 2), base, base * 2}), default=base)
