"""Picks a tf.distribute strategy from --strategy and logs the choice."""
import json
import os
import sys

import tensorflow as tf

from common.errors import UserError


def _tpu_strategy():
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def _has_tpu():
  if not os.environ.get("TPU_NAME") and not tf.config.list_logical_devices("TPU"):
    return False
  try:
    tf.distribute.cluster_resolver.TPUClusterResolver()
    return True
  except (ValueError, RuntimeError):
    return False


def choose(name):
  """Returns (strategy, description). `auto`: TPU, multi-worker, mirrored, one GPU, CPU."""
  if name == "auto" and os.environ.get("TF_CONFIG") and not os.environ.get("TPU_NAME"):
    name = "multi_worker"  # decided before anything initialises TF, which multi-worker forbids
  gpus = [] if name == "multi_worker" else tf.config.list_logical_devices("GPU")
  if name == "auto":
    if _has_tpu():
      name = "tpu"
    elif os.environ.get("TF_CONFIG"):
      name = "multi_worker"
    elif len(gpus) > 1:
      name = "mirrored"
    else:
      name = "gpu" if gpus else "cpu"
  # One device: TF's default strategy. OneDeviceStrategy doubled the CPU time of each training
  # step here (MNIST CNN: about 800 instead of 1,600+ samples/s on 2 cores; see make bench).
  if name == "cpu":
    if not gpus:
      return tf.distribute.get_strategy(), "cpu"
    return tf.distribute.OneDeviceStrategy("/cpu:0"), "cpu"  # keep TF off the GPUs it sees
  if name == "gpu":
    if not gpus:
      raise UserError("--strategy=gpu but TensorFlow sees no GPU; use --strategy=cpu or install "
                      "a CUDA build (pip install 'tensorflow[and-cuda]')")
    return tf.distribute.get_strategy(), "gpu"  # TF places ops on the first GPU itself
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(), "mirrored"
  if name == "multi_worker":
    if not os.environ.get("TF_CONFIG"):
      raise UserError("--strategy=multi_worker needs TF_CONFIG describing the cluster")
    try:
      json.loads(os.environ["TF_CONFIG"])
    except ValueError as e:
      raise UserError(f"TF_CONFIG is not valid JSON: {e}") from e
    try:
      return tf.distribute.MultiWorkerMirroredStrategy(
          communication_options=_communication_options()), "multi_worker"
    except RuntimeError as e:
      if "program startup" not in str(e):
        raise
      raise UserError("--strategy=multi_worker must be created before TensorFlow runs anything: "
                      "call strategy.get_strategy() before loading data") from e
  if name == "tpu":
    try:
      return _tpu_strategy(), "tpu"
    except (ValueError, RuntimeError) as e:
      raise UserError(f"--strategy=tpu but no TPU could be reached: {e}") from e
  raise UserError(f"unknown --strategy={name}")


def _communication_options():
  """Collective-op timeout from $EXAMPLES_COLLECTIVE_TIMEOUT_S (unset: TF's default, none).

  With a timeout, a worker whose peer died stops with DeadlineExceeded instead of
  waiting forever; set it above the slowest step and checkpoint write.
  """
  timeout = os.environ.get("EXAMPLES_COLLECTIVE_TIMEOUT_S")
  if not timeout:
    return tf.distribute.experimental.CommunicationOptions()
  try:
    seconds = float(timeout)
  except ValueError as e:
    raise UserError(f"EXAMPLES_COLLECTIVE_TIMEOUT_S={timeout!r} is not a number of seconds") from e
  return tf.distribute.experimental.CommunicationOptions(timeout_seconds=seconds)


def task():
  """(task_type, task_index) of this process from TF_CONFIG; ("worker", 0) without one."""
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    return "worker", 0
  try:
    config = json.loads(raw)
    t = config.get("task", {})
    return t.get("type", "worker"), int(t.get("index", 0))
  except (ValueError, AttributeError, TypeError) as e:
    raise UserError(f"TF_CONFIG is not valid JSON with a task type and index: {e}") from e


def is_chief():
  """True where this process should write results, checkpoints and the final model.

  Single-process runs are their own chief. In a TF_CONFIG cluster the chief is
  the task of type "chief", or worker 0 when the cluster has no "chief" task
  (MultiWorkerMirroredStrategy's convention).
  """
  task_type, index = task()
  if task_type == "chief":
    return True
  if task_type != "worker":
    return False
  try:
    has_chief = bool(json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
                     .get("chief"))
  except ValueError:
    has_chief = False
  return index == 0 and not has_chief


def get_strategy(name="auto"):
  strategy, chosen = choose(name)
  try:
    devices = strategy.extended.worker_devices
  except (AttributeError, RuntimeError):  # the default strategy has none: TF places ops itself
    devices = (f"/{chosen}:0",)
  print(f"strategy: {chosen} ({type(strategy).__name__}, {strategy.num_replicas_in_sync} "
        f"replica(s): {', '.join(devices)})", file=sys.stderr)
  return strategy


def scale_learning_rate(settings, strategy, enabled):
  """--scale_learning_rate: the linear scaling rule, learning rate x replicas in sync.

  `--batch_size` is global, so by default N replicas train with the same
  batch and learning rate as one device. Whoever raises --batch_size N-fold to
  keep each replica busy may opt in to scaling the learning rate N-fold too.
  Updates and returns `settings` (the effective learning rate, and the base
  one and the factor when scaled, all recorded in results.json).
  """
  if not enabled:
    return settings
  replicas = strategy.num_replicas_in_sync
  base = settings["learning_rate"]
  settings.update(learning_rate=base * replicas, base_learning_rate=base,
                  learning_rate_scale=replicas)
  print(f"strategy: --scale_learning_rate: learning rate {base:g} x {replicas} replica(s) = "
        f"{base * replicas:g}", file=sys.stderr)
  return settings


def device_description():
  """A short description of the hardware, for results files."""
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    names = []
    for gpu in gpus:
      details = tf.config.experimental.get_device_details(gpu)
      names.append(details.get("device_name", gpu.name))
    return f"{len(gpus)} GPU: {', '.join(names)}"
  model = ""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          model = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return f"CPU x{os.cpu_count()}" + (f" ({model})" if model else "")
