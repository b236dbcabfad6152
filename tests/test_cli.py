"""`--help` of every example: its own flags, then the shared ones by topic, with defaults.

The scripts start in parallel (each imports TensorFlow, seconds of CPU); the
rendering itself is also checked in-process on flags defined here.
"""
import os
import re
import subprocess
import sys

from absl import flags
import pytest

from tests.conftest import OFFLINE_ENV, ROOT

from common import cli  # noqa: E402  (imports TensorFlow)
from common import flags as common_flags  # noqa: E402

EXAMPLES = ("mnist_cnn.py", "text_classifier.py", "speech_lstm.py", "cifar_cnn.py",
            "sequence_lstm.py", "backprop_scratch.py")
TUNABLE = {"mnist_cnn.py", "text_classifier.py", "speech_lstm.py", "cifar_cnn.py",
            "sequence_lstm.py"}  # every trainable example but the NumPy one
OWN = {  # one flag each script defines itself
    "mnist_cnn.py": "--images", "text_classifier.py": "--input_file", "speech_lstm.py": "--wav",
    "cifar_cnn.py": "--images", "sequence_lstm.py": "--seq_length",
    "backprop_scratch.py": "--seed_sweep"}
TOPICS = [topic for topic, _ in cli.TOPICS]


def expected_topics(script):
  if script == "backprop_scratch.py":  # defines all of its flags itself
    return []
  return [t for t in TOPICS if t != "Tuning" or script in TUNABLE]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """{(script, spelling): CompletedProcess-like (returncode, stdout, stderr)}, run in parallel."""
  flagfile = tmp_path_factory.mktemp("cli") / "flags.txt"
  flagfile.write_text("--epochs=3\n--helpshort\n")
  jobs = [(script, "--help") for script in EXAMPLES]
  jobs += [("text_classifier.py", "-h"), ("cifar_cnn.py", f"--flagfile={flagfile}"),
           ("mnist_cnn.py", "--helpfull")]
  env = {**os.environ, **OFFLINE_ENV}
  procs = {job: subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", job[0]),
                                  job[1]], cwd=ROOT, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for job in jobs}
  out = {}
  for job, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=240)
    out[job] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
  return out


@pytest.mark.parametrize("script", EXAMPLES)
def test_help_shows_own_flags_then_shared_groups_with_defaults(runs, script):
  proc = runs[(script, "--help")]
  assert proc.returncode == 0, proc.stderr
  text = proc.stdout
  lines = text.splitlines()
  assert lines[0].startswith(f"{script}: ") and "Title" not in lines[0]
  assert "Usage:" in lines and f"  python examples/{script}" in text
  own = text.index(f"Flags of {script}:")
  assert text.index("Usage:") < own < text.index(f"\n  {OWN[script]} ")
  positions = [text.index(f"\n{topic}:\n") for topic in expected_topics(script)]
  assert positions == sorted(positions) and all(own < p for p in positions)
  for topic in set(TOPICS) - set(expected_topics(script)):
    assert f"\n{topic}:\n" not in text
  assert cli.OTHER not in text, "a shared flag has no topic in common/cli.py TOPICS"
  # every flag: its first sentence and its default
  entries = {name: " ".join(description.split())
             for name, description in re.findall(r"^  (--\S+)\s+(.*(?:\n {6,}.*)*)", text, re.M)}
  assert len(entries) >= 3
  for name, description in entries.items():
    assert "default" in description, name
  assert entries["--seed"].startswith("Random seed") and entries["--seed"].endswith(
      "(default: 42)")
  assert entries["--[no]dry_run"].endswith("(default: false)")
  if script != "backprop_scratch.py":
    assert entries["--epochs"].startswith("Training epochs (default: the variant's setting")
  assert "head -n " in text and f"examples/{script}" in text.splitlines()[-3]
  assert "--helpfull" in text
  # the module docstring's body is not dumped, nor TensorFlow's start-up log
  assert "Where this version differs" not in text
  assert "cudart" not in proc.stderr and "InitializeLog" not in proc.stderr, proc.stderr


def test_h_and_helpshort_from_a_flagfile_are_help_too(runs):
  for job in [("text_classifier.py", "-h"), ("cifar_cnn.py", None)]:
    proc = next(p for (s, a), p in runs.items()
                if s == job[0] and (a == job[1] or (job[1] is None and "flagfile" in a)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == runs[(job[0], "--help")].stdout


def test_helpfull_still_lists_every_flag_absls_too(runs, script="mnist_cnn.py"):
  proc = runs[(script, "--helpfull")]
  assert proc.returncode == 1  # absl's convention, unchanged
  help_flags = re.findall(r"^  (--(?:\[no\])?\w+)", runs[(script, "--help")].stdout, re.M)
  assert help_flags
  for name in help_flags:
    assert f"{name}:" in proc.stdout, name
  for absl_flag in ("--flagfile", "--verbosity", "--helpfull", "-h,--[no]help",
                    "-?,--[no]helpshort"):
    assert absl_flag in proc.stdout, absl_flag


# --- in-process: the rendering on flags defined here -------------------------------------------

VARIANTS = {"document": dict(epochs=5, batch_size=32, learning_rate=0.001, optimizer="adam")}


def make_flags(modes=("train", "predict", "tune")):
  fv = flags.FlagValues()
  flags.DEFINE_integer("window", 7, "Frames per window. Longer windows see more.",
                       flag_values=fv)
  flags.DEFINE_multi_string("text", None, "A text to classify; repeat the flag for more.",
                            flag_values=fv)
  common_flags.define_common_flags(fv, example="demo", variants=("document",),
                                   datasets=("demo_data",), variant_defaults=VARIANTS,
                                   modes=modes)
  return fv


def test_every_shared_flag_has_a_topic():
  groups = cli.shared_groups(make_flags())
  assert [topic for topic, _ in groups] == TOPICS
  listed = [name for _, names in cli.TOPICS for name in names]
  assert len(listed) == len(set(listed)), "a flag under two topics"


def test_help_text_in_process(tmp_path):
  fv = make_flags(modes=("train", "predict"))
  script = tmp_path / "demo.py"
  doc = "Title: A demo\n\nLong story.\n\nUsage:\n  python demo.py --window=9\n"
  script.write_text(f'"""{doc}"""\nx = 1\n')
  text = cli.help_text(fv, __name__, doc, str(script), width=100)
  lines = text.splitlines()
  assert lines[:4] == ["demo.py: A demo", "", "Usage:", "  python demo.py --window=9"]
  assert "Long story" not in text
  own = text.index("Flags of demo.py:")
  assert own < text.index("\n  --window ") < text.index("Mode & model:") < text.index("Predict:")
  assert "Tuning:" not in text  # this demo cannot tune
  assert re.search(r"--window +Frames per window\. \(default: 7\)\n", text)
  assert re.search(r"--text +A text to classify; repeat the flag for more\. \(default: none\)",
                   text)
  assert f"head -n 7 {script}" in text


def test_a_shared_flag_without_topic_is_still_shown(monkeypatch):
  monkeypatch.setattr(cli, "TOPICS", tuple((t, n) for t, n in cli.TOPICS if t != "Predict"))
  groups = dict(cli.shared_groups(make_flags()))
  assert [f.name for f in groups[cli.OTHER]] == ["model"]


@pytest.mark.parametrize("help_string,sentence", [
    ("Model variant; `document` is the tutorial's original.",
     "Model variant; `document` is the tutorial's original."),
    ("For --mode=predict: path to a saved .keras model. More here.",
     "For --mode=predict: path to a saved .keras model."),
    ("Token strings, e.g. 51723,32190.", "Token strings, e.g. 51723,32190."),
    ("Two lines\n   folded. Second", "Two lines folded."),
    ("No period", "No period"),
])
def test_first_sentence(help_string, sentence):
  assert cli.first_sentence(help_string) == sentence


def test_defaults_in_help_strings_do_not_contradict_absls():
  """A flag with a default other than None states it only as absl prints it, if at all."""
  fv = make_flags()
  for flag in fv._flags().values():  # pylint: disable=protected-access
    said = re.search(r"\(default: ([^)]*)\)", flag.help or "")
    if flag.default is None or not said:
      continue
    assert not any(ch.isdigit() for ch in said.group(1)) or str(flag.default) in said.group(1), (
        flag.name, flag.help)


def test_tensorflow_start_up_lines_are_dropped_below_the_level():
  banner = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
  info = b"I0000 00:00:1795398756.027031    2647 cudart_stub.cc:31] Could not find cuda drivers\n"
  error = b"E0000 00:00:1795398756.027031    2647 foo.cc:1] real trouble\n"
  assert not cli._keep_line(banner, 2) and not cli._keep_line(info, 2)
  assert cli._keep_line(error, 2) and not cli._keep_line(error, 3)
  assert cli._keep_line(b"Traceback (most recent call last):\n", 3)
  assert cli._keep_line(b"UserWarning: something\n", 2)


FAKE_TENSORFLOW = '''
import os, sys
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1795398756.027031    2647 cudart_stub.cc:31] Could not find cuda drivers\\n")
os.write(2, b"E0000 00:00:1795398756.027031    2647 foo.cc:1] real trouble\\n")
print("a Python warning", file=sys.stderr)
if os.environ.get("FAKE_TF_FAILS"):
  raise ImportError("fake TensorFlow is broken")
'''


@pytest.mark.parametrize("level,fails", [("2", False), ("0", False), ("2", True)])
def test_the_quiet_import_keeps_everything_but_the_start_up_lines(tmp_path, level, fails):
  (tmp_path / "tensorflow.py").write_text(FAKE_TENSORFLOW)
  env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
         "TF_CPP_MIN_LOG_LEVEL": level, "FAKE_TF_FAILS": "1" if fails else ""}
  proc = subprocess.run([sys.executable, "-c", "from common import cli; print('imported')"],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
  assert "real trouble" in proc.stderr and "a Python warning" in proc.stderr
  assert ("cudart_stub" in proc.stderr) == (level == "0")
  assert ("InitializeLog" in proc.stderr) == (level == "0")
  if fails:
    assert proc.returncode == 1 and "ImportError: fake TensorFlow is broken" in proc.stderr
  else:
    assert proc.returncode == 0 and proc.stdout == "imported\n", proc.stderr
