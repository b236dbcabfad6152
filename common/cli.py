"""The command line of every example: a short, grouped `--help`, and TensorFlow kept quiet.

An example imports this module before anything imports TensorFlow and ends with
`cli.run(main)` instead of absl's `app.run(main)`. The difference is `--help`
(also `-h`, `--helpshort`, `-?`, exit status 0): the script's title and the
"Usage:" block of its docstring, its own flags, then the shared flags (those
defined in common/) grouped by topic as in TOPICS, each with its default and
the first sentence of its help. `--helpfull`, `--flagfile` and the rest of
absl's flags work as before.

Importing this module sets TF_CPP_MIN_LOG_LEVEL=2 unless it is set already and
imports TensorFlow with the log lines its C++ side prints before its logging
starts ("All log messages before absl::InitializeLog() ...", "Could not find
cuda drivers ...") held to that level too; TF_CPP_MIN_LOG_LEVEL=0 shows them.
"""
import ast
import os
import re
import shutil
import sys
import textwrap
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

# The shared flags by topic, in the order --help shows them. A flag defined in
# common/ but missing here is shown under OTHER (and tests/test_cli.py fails).
TOPICS = (
    ("Mode & model", ("mode", "variant", "dry_run")),
    ("Data", ("dataset", "data_source", "data_dir", "train_size", "test_size",
              "validation_split")),
    ("Training", ("epochs", "batch_size", "learning_rate", "optimizer", "seed",
                  "early_stopping", "patience")),
    ("Output & checkpoints", ("output_dir",)),
    ("Distribution, precision & compiling", ("strategy", "scale_learning_rate", "precision",
                                             "jit_compile")),
    ("Tuning", ("tuner", "max_trials", "executions_per_trial", "tune_epochs", "objective",
                "fresh", "hparams")),
    ("Predict", ("model",)),
)
OTHER = "Other shared flags"
SHARED_PACKAGE = "common"  # flags defined in this package's modules are the shared ones

# --- TensorFlow's start-up log lines -------------------------------------------------------

# absl's C++ log line: severity, date, time, thread, file:line]
_C_LOG_LINE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
_PRE_INIT_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called"


def _keep_line(line, min_level):
  if line.startswith(_PRE_INIT_BANNER):
    return False
  match = _C_LOG_LINE.match(line)
  return not match or _SEVERITY[match.group(1)] >= min_level


def _forward(read_fd, write_fd, min_level):
  with os.fdopen(read_fd, "rb") as pipe:
    for line in pipe:
      if _keep_line(line, min_level):
        view = memoryview(line)
        while view:
          view = view[os.write(write_fd, view):]


def import_tensorflow_quietly():
  """Imports TensorFlow, dropping the C++ log lines below TF_CPP_MIN_LOG_LEVEL that it
  prints before its own logging (which honours that variable) starts.

  Its stderr goes through a pipe while it loads; every other line (Python
  warnings, errors) passes through at once, in order.
  """
  try:
    min_level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL") or 0)
  except ValueError:
    min_level = 0
  if min_level < 1 or "tensorflow" in sys.modules:
    import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    return
  sys.stderr.flush()
  try:
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
  except OSError:  # no usable stderr: nothing to keep quiet
    import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    return
  os.dup2(write_fd, 2)
  os.close(write_fd)
  forwarder = threading.Thread(target=_forward, args=(read_fd, saved, min_level), daemon=True)
  forwarder.start()
  try:
    import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)  # closes the pipe's last write end: the forwarder reads to the end
    forwarder.join(timeout=10)
    if not forwarder.is_alive():
      os.close(saved)


import_tensorflow_quietly()

# --- --help ----------------------------------------------------------------------------------

_MULTI_SUFFIX = ";\n    repeat this option to specify a list of values"  # absl's, on multi flags
# A sentence ends at . ! or ? before a capital, a quote, a dash or the end ("e.g. 5" goes on).
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z`\"'(-]|\s*$)")


def first_sentence(text):
  """The first sentence of a help string, whitespace folded."""
  text = " ".join((text or "").replace(_MULTI_SUFFIX, "").split())
  match = _SENTENCE_END.search(text)
  return text[:match.end()] if match else text


def _default_note(flag):
  """'(default: ...)' for a flag whose first help sentence does not say it already."""
  sentence = first_sentence(flag.help)
  if "default" in sentence.lower():
    return ""
  if flag.default is None:
    said = re.search(r"\((default:[^()]*(\([^()]*\)[^()]*)*)\)", flag.help or "")
    return f"({said.group(1)})" if said else "(default: none)"
  if flag.boolean:
    value = "true" if flag.default else "false"
  elif flag.serializer is not None and not isinstance(flag.default, str):
    value = flag.serializer.serialize(flag.default)
  else:
    value = str(flag.default)
  return f"(default: {value if value != '' else repr(value)})"


def _flag_name(flag):
  return f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"


def describe(flag):
  """What --help says of a flag: the first sentence of its help, then its default."""
  note = _default_note(flag).replace(" ", "\u00a0")  # no-break spaces: wrapped as one word
  return " ".join(filter(None, (first_sentence(flag.help), note)))


def _render_flags(flag_list, column, width):
  lines = []
  for flag in flag_list:
    name = "  " + _flag_name(flag)
    body = [part.replace("\u00a0", " ")
            for part in textwrap.wrap(describe(flag), max(width - column, 30))] or [""]
    if len(name) + 2 > column:
      lines.append(name)
      lines.extend(" " * column + part for part in body)
    else:
      lines.append(name.ljust(column) + body[0])
      lines.extend(" " * column + part for part in body[1:])
  return lines


def _unique(flag_list):
  seen, out = set(), []
  for flag in flag_list:
    if id(flag) not in seen:
      seen.add(id(flag))
      out.append(flag)
  return out


def own_flags(fv, module):
  """The flags `module` (the script) defines itself, in definition order."""
  current = fv._flags()  # pylint: disable=protected-access
  return [f for f in _unique(fv.get_key_flags_for_module(module)) if current.get(f.name) is f]


def shared_groups(fv):
  """[(topic, [flags])] for the flags defined in common/, in TOPICS order."""
  current = fv._flags()  # pylint: disable=protected-access
  shared = {}
  for module, module_flags in fv.flags_by_module_dict().items():
    if module == SHARED_PACKAGE or module.startswith(SHARED_PACKAGE + "."):
      for flag in module_flags:
        if current.get(flag.name) is flag:
          shared[flag.name] = flag
  groups = []
  for topic, names in TOPICS:
    members = [shared.pop(name) for name in names if name in shared]
    if members:
      groups.append((topic, members))
  if shared:
    groups.append((OTHER, sorted(shared.values(), key=lambda f: f.name)))
  return groups


def docstring_lines(script):
  """How many lines the script's header docstring takes (for `head -n`), or None."""
  try:
    with open(script, encoding="utf-8") as f:
      tree = ast.parse(f.read())
  except (OSError, SyntaxError, ValueError):
    return None
  first = tree.body[0] if tree.body else None
  if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
      and isinstance(first.value.value, str)):
    return first.end_lineno
  return None


def help_text(fv, module, doc, script, width=None):
  """The --help page of `script` whose own flags absl files under `module`."""
  if width is None:
    width = min(max(shutil.get_terminal_size((100, 24)).columns, 60), 120)
  doc = doc or ""
  doc_lines = doc.strip("\n").splitlines()
  name = os.path.basename(script)
  out = []
  if doc_lines:
    title = re.sub(r"^Title:\s*", "", doc_lines[0].strip())
    out += [f"{name}: {title}", ""]
  usage = re.search(r"^Usage:\n.*?(?=\n\S|\Z)", doc, flags=re.M | re.S)
  out += (usage.group(0).rstrip().splitlines() if usage
          else ["Usage:", f"  python {script} [flags]"])
  sections = [(f"Flags of {name}", own_flags(fv, module))] + shared_groups(fv)
  sections = [(title, members) for title, members in sections if members]
  names = [_flag_name(f) for _, members in sections for f in members]
  column = min(max(map(len, names), default=0) + 4, 32)  # one column for the whole page
  for title, members in sections:
    out += ["", f"{title}:"] + _render_flags(members, column, width)
  head = docstring_lines(script)
  out += [""]
  if head:
    out.append(f"What the example reproduces, how it differs and what it measured: "
               f"head -n {head} {script}")
  out += [f"Every flag, absl's own included: python {script} --helpfull",
          "Flags from a file: --flagfile=FILE (one --flag=value a line)."]
  return "\n".join(out) + "\n"


def main_help_text():
  """help_text for the running script (__main__)."""
  main_module = sys.modules["__main__"]
  script = sys.argv[0]
  return help_text(flags.FLAGS, script, main_module.__doc__, script)


class HelpFlag(flags.BooleanFlag):
  """--help: prints help_text for the running script and exits 0."""

  def __init__(self, name, short_name):
    super().__init__(name, False, "show this help (the script's flags, then the shared ones "
                     "by topic)", short_name=short_name, allow_hide_cpp=True)

  def parse(self, arg):
    if self._parse(arg):
      try:
        sys.stdout.write(main_help_text())
        sys.stdout.flush()
      except BrokenPipeError:  # `--help | head`
        pass
      sys.exit(0)


def install_help_flags(fv=flags.FLAGS):
  """Replaces absl's --help and --helpshort (-?) with HelpFlag; -h is --help too."""
  if fv is flags.FLAGS:
    app.define_help_flags()  # absl's set, so that app.run finds them defined and keeps ours
  for name in ("help", "helpshort", "?"):
    if name in fv:
      delattr(fv, name)
  flags.DEFINE_flag(HelpFlag("help", "h"), fv, module_name="absl.app")
  flags.DEFINE_flag(HelpFlag("helpshort", "?"), fv, module_name="absl.app")


def run(main, argv=None):
  """absl's app.run(main, argv) with this module's --help."""
  install_help_flags()
  app.run(main, argv=argv)
