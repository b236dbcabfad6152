"""User-facing errors: one line, a non-zero exit, no traceback unless asked for."""
import contextlib
import os
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
  """A problem the user can fix (bad flag, missing file, wrong model...).

  The message names the problem and the fix; the command line prints it as one
  line. Set EXAMPLES_TRACEBACK=1 to see the traceback as well.
  """


@contextlib.contextmanager
def exit_on_user_error():
  """Turns a UserError into `error: <message>` on stderr and exit status 2."""
  try:
    yield
  except UserError as e:
    if os.environ.get("EXAMPLES_TRACEBACK"):
      raise
    message = " ".join(str(e).split())  # one line, whatever the message held
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
