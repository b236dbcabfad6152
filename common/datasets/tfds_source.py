"""tensorflow-datasets as a source: is it prepared, can it be downloaded, load it.

Offline, `download_reachable` answers within a few seconds: it resolves and
connects to the download host in a daemon thread with a hard timeout, so a
broken network can never hang a run. EXAMPLES_OFFLINE=1 skips the probe.
EXAMPLES_PROBE_ADDRESS=host:port points it elsewhere (the tests use a closed
loopback port to simulate being offline).
"""
import os
import socket
import sys
import threading

from common.errors import UserError

PROBE_ADDRESS = ("storage.googleapis.com", 443)  # where tfds downloads most datasets from
PROBE_TIMEOUT_S = 3.0


def _probe_address():
  value = os.environ.get("EXAMPLES_PROBE_ADDRESS")
  if not value:
    return PROBE_ADDRESS
  host, _, port = value.rpartition(":")
  return host, int(port)


def download_reachable(timeout=PROBE_TIMEOUT_S):
  """True if the tfds download host accepts a TCP connection within `timeout` seconds."""
  if os.environ.get("EXAMPLES_OFFLINE"):
    return False
  result = []

  def probe():
    try:
      with socket.create_connection(_probe_address(), timeout=timeout):
        result.append(True)
    except OSError:
      result.append(False)

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout)  # name resolution has no timeout of its own: bound it here
  return bool(result and result[0])


def _builder(name, data_dir):
  import tensorflow_datasets as tfds  # imported late: it is slow and only needed here
  try:
    return tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # tfds raises many kinds for a bad name/dir
    raise UserError(f"tensorflow-datasets cannot open {name!r}: {e}") from e


def is_prepared(name, data_dir=None):
  try:
    return _builder(name, data_dir).is_prepared()
  except UserError:
    return False


def _split_names(builder):
  return set(builder.info.splits.keys())


def prepared_builder(name, data_dir, offline_help=""):
  """The tfds builder of `name`, downloading and preparing it first if need be."""
  builder = _builder(name, data_dir)
  if not builder.is_prepared():
    if not download_reachable():
      raise UserError(f"{name!r} is not in the tfds data dir and its download host "
                      f"cannot be reached; use --data_source=bundled or files. {offline_help}")
    print(f"data: downloading {name} with tensorflow-datasets...", file=sys.stderr)
    builder.download_and_prepare()
  return builder


def load_splits(spec, data_dir, train_size, test_size, validation_split):
  """Streams the tfds splits (never all in memory), slicing subsets by index."""
  from common.datasets.registry import Splits  # avoid an import cycle
  import tensorflow_datasets as tfds
  import tensorflow as tf

  builder = prepared_builder(spec.tfds_name, data_dir, spec.offline_help)
  splits_info = builder.info.splits
  n_train = splits_info["train"].num_examples
  if train_size:
    n_train = min(n_train, train_size)
  test_name = "test" if "test" in _split_names(builder) else "validation"
  n_test = splits_info[test_name].num_examples
  if test_size:
    n_test = min(n_test, test_size)
  if "validation" in _split_names(builder) and test_name != "validation":
    n_val = splits_info["validation"].num_examples
    val_split, train_split = "validation", f"train[:{n_train}]"
  else:
    n_val = int(round(n_train * validation_split))
    val_split, train_split = f"train[:{n_val}]", f"train[{n_val}:{n_train}]"
    n_train -= n_val

  def get(split):
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    return ds.map(spec.tfds_map, num_parallel_calls=tf.data.AUTOTUNE) if spec.tfds_map else ds

  return Splits(train=get(train_split), validation=get(val_split) if n_val else None,
                test=get(f"{test_name}[:{n_test}]"),
                sizes={"train": n_train, "validation": n_val, "test": n_test},
                source="tfds", spec=spec)
