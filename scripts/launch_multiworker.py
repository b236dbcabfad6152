"""Runs an example as N tf.distribute workers on this machine (MultiWorkerMirroredStrategy).

Usage:
  python scripts/launch_multiworker.py --workers=2 [--timeout=900] -- \\
      examples/mnist_cnn.py --data_source=bundled --train_size=512 --epochs=1

It picks N free ports on 127.0.0.1, starts N copies of the example, each with
its own TF_CONFIG (worker 0 is the chief), prints their output prefixed with
`[worker i]`, and waits. The example's `--strategy=auto` chooses
`multi_worker` because TF_CONFIG is set; `--batch_size` stays the GLOBAL batch
size, split across all workers' replicas.

Where files go: the chief (worker 0) writes results, checkpoints, backup and
the final model into the example's --output_dir as usual; the launcher gives
every other worker `--output_dir=<temporary folder>/worker_<i>` (deleted at the
end), so workers never write the same file.

Faults: if any worker exits with an error or is killed, the launcher stops the
others at once and exits non-zero naming the worker (collectives would
otherwise wait for the dead peer forever); the same happens after --timeout
seconds. Run the same command again to resume from the chief's backup
(<output_dir>/backup): every worker gets the chief's epoch and weights.

On a real cluster (one worker per machine, no launcher), run the same example
command on every machine with TF_CONFIG naming all workers and this machine's
index, and an --output_dir on each machine (the chief's holds the results):

  # on host1 (the chief)
  TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
              "task": {"type": "worker", "index": 0}}' \\
    python examples/mnist_cnn.py --strategy=multi_worker --output_dir=runs/mw
  # on host2: the same, with "index": 1 (and any scratch --output_dir)

Start them within a few minutes of each other: workers wait for all peers at
start-up. Set EXAMPLES_COLLECTIVE_TIMEOUT_S (e.g. 600, above your slowest step
plus checkpoint write) so that a worker whose peer dies fails instead of
waiting forever; a cluster manager (Kubernetes, Slurm) should then restart all
workers with the same command, which resumes from the chief's backup.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STOP_GRACE_S = 5


def free_ports(n):
  """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
  sockets = []
  try:
    for _ in range(n):
      s = socket.socket()
      s.bind(("127.0.0.1", 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def tf_config(addresses, index):
  return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def describe_exit(code):
  if code < 0:
    try:
      return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
      return f"was killed by signal {-code}"
  return f"exited with code {code}"


def pump(index, stream, lock):
  for line in stream:
    with lock:
      sys.stdout.write(f"[worker {index}] {line}")
      sys.stdout.flush()


def stop(procs):
  """SIGTERM every still-running worker's process group, SIGKILL after a grace period."""
  for sig in (signal.SIGTERM, signal.SIGKILL):
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
      try:
        os.killpg(p.pid, sig)
      except ProcessLookupError:
        pass
    deadline = time.time() + STOP_GRACE_S
    while time.time() < deadline and any(p.poll() is None for p in alive):
      time.sleep(0.1)


def parse(argv):
  parser = argparse.ArgumentParser(
      description="Run an example as N MultiWorkerMirroredStrategy workers on 127.0.0.1.",
      usage="%(prog)s --workers=N [--timeout=S] -- examples/SCRIPT.py [flags...]")
  parser.add_argument("--workers", type=int, default=2, help="number of worker processes")
  parser.add_argument("--timeout", type=float, default=1800,
                      help="seconds before all workers are stopped and the run fails")
  if "--" not in argv:
    parser.error("put the example and its flags after --, e.g. -- examples/mnist_cnn.py")
  split = argv.index("--")
  args = parser.parse_args(argv[:split])
  command = argv[split + 1:]
  if not command or not command[0].endswith(".py"):
    parser.error("after -- give the example script, e.g. examples/mnist_cnn.py")
  if not os.path.exists(command[0]):
    parser.error(f"{command[0]} not found; run from the repository root")
  if args.workers < 1:
    parser.error("--workers must be at least 1")
  if args.timeout <= 0:
    parser.error("--timeout must be positive")
  return args, command


def main(argv):
  args, command = parse(argv)
  addresses = [f"127.0.0.1:{p}" for p in free_ports(args.workers)]
  scratch = tempfile.mkdtemp(prefix="launch_multiworker_")
  lock = threading.Lock()
  procs, pumps = [], []
  print(f"launch_multiworker: {args.workers} worker(s) at {', '.join(addresses)}; "
        f"worker 0 is the chief", flush=True)
  try:
    for i in range(args.workers):
      env = {**os.environ, "TF_CONFIG": tf_config(addresses, i), "PYTHONUNBUFFERED": "1"}
      extra = [] if i == 0 else [f"--output_dir={os.path.join(scratch, f'worker_{i}')}"]
      proc = subprocess.Popen([sys.executable, *command, *extra], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)  # its own group: stop() reaches children
      procs.append(proc)
      with lock:
        print(f"launch_multiworker: worker {i} is pid {proc.pid}", flush=True)
      thread = threading.Thread(target=pump, args=(i, proc.stdout, lock), daemon=True)
      thread.start()
      pumps.append(thread)
    deadline = time.time() + args.timeout
    failed = None
    while failed is None and any(p.poll() is None for p in procs):
      if time.time() > deadline:
        failed = (None, f"timed out after {args.timeout:g} s")
        break
      for i, p in enumerate(procs):
        if p.poll() not in (None, 0):
          failed = (p.returncode, f"worker {i} {describe_exit(p.returncode)}")
          break
      time.sleep(0.2)
    if failed is None:
      for i, p in enumerate(procs):
        if p.returncode != 0:
          failed = (p.returncode, f"worker {i} {describe_exit(p.returncode)}")
          break
  except KeyboardInterrupt:
    failed = (130, "interrupted")
  finally:
    stop(procs)
    for thread in pumps:
      thread.join(timeout=2)
    shutil.rmtree(scratch, ignore_errors=True)
  if failed:
    code, why = failed
    print(f"error: {why}; stopped the other workers. Rerun the same command to resume from "
          "the chief's backup in its --output_dir.", file=sys.stderr, flush=True)
    return code if code and code > 0 else 1
  print(f"launch_multiworker: all {args.workers} worker(s) finished", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
