"""Runs an example's keras-tuner search as a chief and N workers on this machine.

Usage:
  python scripts/launch_tuning.py --workers=2 [--timeout=3600] -- \\
      examples/mnist_cnn.py --mode=tune --max_trials=6 --tune_epochs=2 --data_source=bundled

This is keras-tuner's own distributed search (gRPC): the launcher picks a free
port on 127.0.0.1 and starts N+1 copies of the same command, each with
KERASTUNER_ORACLE_IP=127.0.0.1, KERASTUNER_ORACLE_PORT=<port> and its own
KERASTUNER_TUNER_ID: `chief` (holds the oracle, hands out trials, trains
nothing) and `tuner0` ... `tuner<N-1>` (each asks the chief for a trial, trains
it, reports the score, and asks again until the oracle has run --max_trials).
Output lines are prefixed `[chief]` / `[tuner<i>]`.

Every process uses the example's --output_dir: the keras-tuner project in
<output_dir>/tuning is shared (one folder per trial); only the chief writes
best_hparams.json, trials.csv (its `worker` column says who ran each trial) and
tuning.json, and scores the tutorial's own settings at the end.

Faults: if any process exits with an error or is killed, the launcher stops
the others at once and exits non-zero naming it; the same happens after
--timeout seconds. Run the same command again to resume: the chief reloads
the oracle, finished trials are kept and unfinished ones run again (--fresh
starts over). When the chief has finished, workers still waiting for it get
--worker_grace seconds to leave and are then stopped.

On several machines (no launcher): run the same command everywhere, with
KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set to the chief's address, and
KERASTUNER_TUNER_ID=chief on the chief, tuner0, tuner1, ... on the others; give
them one shared --output_dir (a network file system) or at least the chief
its own:

  # on host1 (the chief)
  KERASTUNER_TUNER_ID=chief KERASTUNER_ORACLE_IP=host1 KERASTUNER_ORACLE_PORT=8000 \\
    python examples/mnist_cnn.py --mode=tune --max_trials=20 --output_dir=/shared/tune
  # on host2, host3, ...: the same with KERASTUNER_TUNER_ID=tuner0, tuner1, ...

A worker waits up to an hour (keras-tuner's gRPC deadline) for the chief to
come up, so start order does not matter.
"""
import argparse
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from scripts.launch_multiworker import describe_exit, free_ports, stop  # noqa: E402


def pump(label, stream, lock):
  for line in stream:
    with lock:
      sys.stdout.write(f"[{label}] {line}")
      sys.stdout.flush()


def parse(argv):
  parser = argparse.ArgumentParser(
      description="Run an example's keras-tuner search as a chief and N workers on 127.0.0.1.",
      usage="%(prog)s --workers=N [--timeout=S] -- examples/SCRIPT.py --mode=tune [flags...]")
  parser.add_argument("--workers", type=int, default=2,
                      help="number of worker processes that run trials (default: 2)")
  parser.add_argument("--timeout", type=float, default=3600,
                      help="seconds before every process is stopped and the run fails "
                           "(default: 3600)")
  parser.add_argument("--worker_grace", type=float, default=10,
                      help="seconds a worker may keep running after the chief has finished "
                           "(default: 10)")
  split = argv.index("--") if "--" in argv else len(argv)
  args = parser.parse_args(argv[:split])  # --help works without the example
  if split == len(argv):
    parser.error("put the example and its flags after --, e.g. -- examples/mnist_cnn.py "
                 "--mode=tune")
  command = argv[split + 1:]
  if not command or not command[0].endswith(".py"):
    parser.error("after -- give the example script, e.g. examples/mnist_cnn.py --mode=tune")
  if not os.path.exists(command[0]):
    parser.error(f"{command[0]} not found; run from the repository root")
  if "--mode=tune" not in command[1:]:
    parser.error("the example must run with --mode=tune")
  if args.workers < 1:
    parser.error("--workers must be at least 1")
  if args.timeout <= 0 or args.worker_grace < 0:
    parser.error("--timeout must be positive and --worker_grace not negative")
  return args, command


def main(argv):
  args, command = parse(argv)
  port = free_ports(1)[0]
  labels = ["chief", *(f"tuner{i}" for i in range(args.workers))]
  lock = threading.Lock()
  procs, pumps = [], []
  print(f"launch_tuning: chief at 127.0.0.1:{port}, {args.workers} worker(s)", flush=True)
  failed = None
  try:
    for label in labels:
      env = {**os.environ, "KERASTUNER_TUNER_ID": label, "KERASTUNER_ORACLE_IP": "127.0.0.1",
             "KERASTUNER_ORACLE_PORT": str(port), "PYTHONUNBUFFERED": "1"}
      env.pop("TF_CONFIG", None)  # trials train in one process each, not as a tf.distribute cluster
      proc = subprocess.Popen([sys.executable, *command], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)  # its own group: stop() reaches children
      procs.append(proc)
      with lock:
        print(f"launch_tuning: {label} is pid {proc.pid}", flush=True)
      thread = threading.Thread(target=pump, args=(label, proc.stdout, lock), daemon=True)
      thread.start()
      pumps.append(thread)
    deadline = time.time() + args.timeout
    chief_done = None
    while failed is None and any(p.poll() is None for p in procs):
      now = time.time()
      if now > deadline:
        failed = (None, f"timed out after {args.timeout:g} s")
        break
      for label, p in zip(labels, procs):
        if p.poll() not in (None, 0):
          failed = (p.returncode, f"{label} {describe_exit(p.returncode)}")
          break
      if procs[0].poll() == 0 and chief_done is None:
        chief_done = now
      if chief_done is not None and now - chief_done > args.worker_grace:
        late = [label for label, p in zip(labels, procs) if p.poll() is None]
        if late:
          with lock:
            print(f"launch_tuning: the chief has finished; stopping {', '.join(late)}, still "
                  "waiting for it", flush=True)
        break
      time.sleep(0.2)
    if failed is None and procs[0].poll() != 0:
      failed = (procs[0].returncode, f"chief {describe_exit(procs[0].returncode)}")
    if failed is None:
      for label, p in zip(labels, procs):
        if p.poll() not in (None, 0):
          failed = (p.returncode, f"{label} {describe_exit(p.returncode)}")
          break
  except KeyboardInterrupt:
    failed = (130, "interrupted")
  finally:
    stop(procs)
    for thread in pumps:
      thread.join(timeout=2)
  if failed:
    code, why = failed
    print(f"error: {why}; stopped the others. Rerun the same command to resume the search "
          "(finished trials are kept).", file=sys.stderr, flush=True)
    return code if code and code > 0 else 1
  print(f"launch_tuning: the search finished (chief and {args.workers} worker(s))", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
