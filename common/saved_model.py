"""Loading a saved .keras model for prediction: safe mode, and a check that it fits."""
import os
import zipfile

import keras

from common.errors import UserError


def load(path, *, example, input_shape=None):
  """Loads `path` with Keras' safe mode (no arbitrary code) and checks it is `example`'s.

  Models are named "<example>_<variant>" when built, which is how a model from
  another example (or an unrelated .keras file) is told apart.
  """
  if not os.path.exists(path):
    raise UserError(f"model file {path} not found; train one first (it is written to "
                    f"<output_dir>/model.keras)")
  if not zipfile.is_zipfile(path):
    raise UserError(f"{path} is not a .keras model file (not a zip archive)")
  try:
    model = keras.models.load_model(path, safe_mode=True, compile=False)
  except Exception as e:  # Keras raises many types for a damaged or foreign file
    raise UserError(f"cannot load {path} as a Keras model: {str(e).splitlines()[0]}") from e
  if not model.name.startswith(example + "_"):
    raise UserError(f"{path} holds model {model.name!r}, not a {example} model; pass a "
                    f"model.keras written by examples/{example}.py")
  if input_shape is not None and tuple(model.input_shape[1:]) != tuple(input_shape):
    raise UserError(f"{path} expects input {model.input_shape[1:]}, this example feeds "
                    f"{tuple(input_shape)}")
  return model
