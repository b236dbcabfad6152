"""Hyper-parameter search with keras-tuner, shared by every trainable example.

An example hands over a keras-tuner HyperModel built from the same builder that
trains its document variant (one model definition); this module makes the
tuner, runs or resumes the search, and writes what it found:

  <output_dir>/tuning/          keras-tuner's project (oracle state: rerun to resume)
  <output_dir>/best_hparams.json
  <output_dir>/trials.csv       trial id, hyper-parameters, score, status

Distributed search is keras-tuner's own (gRPC, needs grpcio): every process
runs the same command with KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT naming
the chief and its own KERASTUNER_TUNER_ID. The chief ("chief" in its id) holds
the oracle, serves trials and trains nothing; each worker (any other id, e.g.
tuner0, tuner1) asks it for a trial, trains it, reports the score and asks
again until the oracle says stop. All of them share <output_dir>/tuning (each
trial has its own folder); only the chief writes best_hparams.json,
trials.csv (with the worker that ran each trial) and tuning.json, and scores
the tutorial's defaults. scripts/launch_tuning.py starts them on one machine.
"""
import csv
import json
import os
import sys
import time

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


ENV_VARS = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def distributed_role():
  """"chief", "worker", or None (a search in this process alone), from keras-tuner's variables.

  keras-tuner itself ignores an incomplete set; here it is an error, so that a
  typo never turns a worker into a second, independent search.
  """
  present = [name for name in ENV_VARS if os.environ.get(name)]
  if not present:
    return None
  missing = [name for name in ENV_VARS if name not in present]
  if missing:
    raise UserError(f"distributed tuning needs all of {', '.join(ENV_VARS)}; "
                    f"{', '.join(present)} set but {', '.join(missing)} not")
  port = os.environ["KERASTUNER_ORACLE_PORT"]
  if not port.isdigit() or not 0 < int(port) < 65536:
    raise UserError(f"KERASTUNER_ORACLE_PORT={port!r} is not a TCP port number")
  try:
    import grpc  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    from keras_tuner.src import protos  # pylint: disable=import-outside-toplevel
    protos.get_service_grpc()
  except ImportError as e:
    raise UserError(f"distributed tuning needs grpcio (pinned in requirements.txt): {e}") from e
  return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def make_tuner(hypermodel, flags_obj, output_dir, overwrite=None):
  overwrite = flags_obj.fresh if overwrite is None else overwrite
  common = dict(objective=objective(flags_obj.objective), directory=output_dir,
                project_name="tuning", overwrite=overwrite, seed=flags_obj.seed,
                executions_per_trial=flags_obj.executions_per_trial)
  if flags_obj.tuner == "hyperband":
    return kt.Hyperband(hypermodel, max_epochs=flags_obj.tune_epochs, **common)
  cls = kt.BayesianOptimization if flags_obj.tuner == "bayesian" else kt.RandomSearch
  return cls(hypermodel, max_trials=flags_obj.max_trials, **common)


def search(hypermodel, train_ds, val_ds, flags_obj, output_dir):
  """Runs (or resumes) the search; writes best_hparams.json and trials.csv; returns stats."""
  if val_ds is None:
    raise UserError("--mode=tune needs validation data; set --validation_split above 0")
  role = distributed_role()
  # --fresh is the chief's to apply: a worker deleting the shared project could race it
  tuner = make_tuner(hypermodel, flags_obj, output_dir,
                     overwrite=flags_obj.fresh and role != "worker")
  if role == "worker":
    return work(tuner, train_ds, val_ds, flags_obj, output_dir)
  done = len(tuner.oracle.trials)
  if done:
    print(f"tune: resuming the search in {output_dir}/tuning ({done} trial(s) already there; "
          "--fresh starts over)", file=sys.stderr)
  if role == "chief":
    serve(tuner, output_dir)
  else:
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


def _workers_path(tuner):
  return os.path.join(tuner.project_dir, "trial_workers.json")


def _trial_workers(tuner):
  """{trial id: tuner id of the worker that ran it}, recorded by a distributed chief."""
  try:
    with open(_workers_path(tuner)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def serve(tuner, output_dir, poll_s=0.2):
  """The chief's part of a distributed search: serve the oracle until the workers are done.

  keras-tuner's own `search` on the chief (oracle_chief.start_server) does the
  same but polls every 20 s once the first worker has been told to stop, and
  never says who ran what; this serves keras-tuner's OracleServicer, records
  the worker of each trial, and returns as soon as the last worker has left.
  """
  # pylint: disable=import-outside-toplevel
  from concurrent import futures
  import grpc
  from keras_tuner.src import protos
  from keras_tuner.src.distribute import oracle_chief
  from keras_tuner.src.engine import trial as trial_module

  oracle = tuner.oracle
  workers = _trial_workers(tuner)
  create_trial = oracle.create_trial

  def recording_create_trial(tuner_id):
    trial = create_trial(tuner_id)
    running = trial.status == trial_module.TrialStatus.RUNNING
    if running and workers.get(trial.trial_id) != tuner_id:
      workers[trial.trial_id] = tuner_id
      with open(_workers_path(tuner) + ".tmp", "w") as f:
        json.dump(workers, f, indent=1, sort_keys=True)
      os.replace(_workers_path(tuner) + ".tmp", _workers_path(tuner))
    return trial

  oracle.create_trial = recording_create_trial  # the servicer calls it by name
  tuner.save()
  address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
  server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
  servicer = oracle_chief.OracleServicer(oracle)
  protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
  try:
    bound = server.add_insecure_port(address)
  except RuntimeError as e:  # grpcio >= 1.5x raises; older ones return 0
    bound, reason = 0, str(e)
  else:
    reason = "bind failed"
  if not bound:
    raise UserError(f"the tuning chief cannot listen on {address} ({reason}); is another "
                    "search using that port? Set KERASTUNER_ORACLE_PORT to a free one")
  server.start()
  print(f"tune: chief serving the search in {output_dir}/tuning at {address}; start workers "
        "with the same command and KERASTUNER_TUNER_ID=tuner0, tuner1, ...", file=sys.stderr)
  try:
    while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
      time.sleep(poll_s)
  finally:
    server.stop(grace=1)
    oracle.create_trial = create_trial
  # keras-tuner's end_trial saves the oracle before it drops the trial from the ongoing ones,
  # and a worker never saves the chief's oracle: save it once more, or the last trial to end
  # would count as unfinished and run again when the search is resumed
  tuner.save()
  print(f"tune: all workers done; {len(oracle.trials)} trial(s) in the search", file=sys.stderr)


def work(tuner, train_ds, val_ds, flags_obj, output_dir):
  """A worker's part: run the trials the chief hands out until it says stop; report them."""
  tuner_id = os.environ["KERASTUNER_TUNER_ID"]
  ran = []
  on_trial_end = tuner.on_trial_end

  def recording_on_trial_end(trial):
    on_trial_end(trial)  # reports the trial to the chief, which scores it
    score = tuner.oracle.get_trial(trial.trial_id).score
    ran.append((trial.trial_id, score))
    shown = f"{score:.4f}" if score is not None else str(trial.status)
    print(f"tune: {tuner_id} finished trial {trial.trial_id}: {flags_obj.objective} {shown}",
          file=sys.stderr)

  tuner.on_trial_end = recording_on_trial_end
  address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
  print(f"tune: {tuner_id} asking the chief at {address} for trials", file=sys.stderr)
  import grpc  # pylint: disable=import-outside-toplevel
  try:
    tuner.search(train_ds, validation_data=val_ds, epochs=flags_obj.tune_epochs, verbose=2)
  except grpc.RpcError as e:
    raise UserError(f"{tuner_id} lost the tuning chief at {address} ({e.code().name}: "
                    f"{e.details()}); restart the chief with the same command (it resumes the "
                    "search, rerunning unfinished trials), then the workers") from e
  ids = [trial_id for trial_id, _ in ran]
  print(f"tune: {tuner_id} ran {len(ran)} trial(s) ({', '.join(ids) or 'none'}); the chief "
        f"writes the results into {output_dir}")
  scores = [s for _, s in ran if s is not None]
  best = ((min if "loss" in flags_obj.objective else max)(scores) if scores else None)
  return {"role": "worker", "tuner_id": tuner_id, "trials": len(ran), "trial_ids": ids,
          "best_score": best, "objective": flags_obj.objective, "tuner": flags_obj.tuner}


def trial_rows(tuner):
  """All trials, best first (trials without a score last)."""
  rows = []
  workers = _trial_workers(tuner)
  for trial in tuner.oracle.trials.values():
    worker = {"worker": workers.get(trial.trial_id, "")} if workers else {}
    rows.append({"trial_id": trial.trial_id, "status": str(trial.status),
                 "score": trial.score, **worker, **trial.hyperparameters.values})
  sign = -1 if tuner.oracle.objective.direction == "max" else 1
  rows.sort(key=lambda r: (r["score"] is None, sign * (r["score"] or 0)))
  return rows


def write_trials_csv(rows, path):
  keys = ["trial_id", "score", "status"] + (["worker"] if any("worker" in r for r in rows) else [])
  keys += sorted({k for r in rows for k in r} - set(keys))
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)


def print_ranking(rows, objective_name):
  print(f"{'rank':>4}  {'trial':>6}  {objective_name:>12}  hyper-parameters")
  for rank, r in enumerate(rows, 1):
    hps = {k: v for k, v in r.items() if k not in ("trial_id", "status", "score", "worker")}
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
  example's input pipeline. Optional: `optimizers`, optimizers to search
  besides the variant's own (default: none, the variant's is kept); `schedule(
  learning_rate, hp)`, what the optimizer gets for a trial's learning rate
  (default: the rate itself), e.g. a decay over the trial's steps; `front_end`,
  the names of the model's fixed leading layers (common/front_end.py): trials
  then train only the layers after them, and the search's data must be the
  front-end's output, computed once for all trials (front_end.precompute).
  Trials compile with the suite's speed settings (training.compile_options), as
  a training run does.
  """

  def __init__(self, build, head, settings, batches, optimizers=(), schedule=None,
               front_end=None):
    super().__init__()
    # (keras-tuner's HyperModel uses self._build itself: keep clear of that name)
    self.build_model, self.head, self.settings, self.batches = build, head, settings, batches
    self.optimizers, self.schedule = tuple(optimizers), schedule
    self.front_end = tuple(front_end or ())

  def declare_hyperparameters(self, hp):
    # The batch size is chosen in fit, which the oracle would only learn of when the first
    # trial reports back: declared here, every trial searches it, also those a distributed
    # search starts on other workers before the first one ends.
    batch_size(hp, self.settings)

  def build(self, hp):
    from common import front_end, training  # late: keeps this module light for --help
    lr = learning_rate(hp, self.settings)
    name = optimizer(hp, self.settings, self.optimizers)
    model = self.build_model(hp)
    if self.front_end:
      _, model = front_end.split(model, self.front_end)
    if self.schedule is not None:
      lr = self.schedule(lr, hp)
    model.compile(optimizer=training.make_optimizer(name, lr), loss=self.head.loss(),
                  metrics=self.head.metrics(),
                  **training.compile_options(model, jit=self.settings.get("jit_compile", "auto")))
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


def optimizer(hp, settings, choices=()):
  """The variant's optimizer, or, where `choices` names others, one searched among them."""
  base = settings["optimizer"]
  if not choices:
    return base
  return hp.Choice("optimizer", sorted({base, *choices}), default=base)
