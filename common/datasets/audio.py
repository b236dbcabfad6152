"""Spoken digits: 8 kHz mono waveforms of the words zero to nine.

Features are float32 waveforms in [-1, 1] of a fixed CLIP_SAMPLES samples
(1.0 s at 8 kHz): every clip, from any source, is resampled to 8 kHz mono, its
leading and trailing silence is trimmed, and it is zero-padded at the front
(or, rarely, cut at the front) to 1.0 s so tf.data can batch it. Labels are int64 digits 0-9. The same
`prepare_clip` serves training data and the files a user passes to predict.

Datasets:

* `spoken_digit_espeak` (bundled, offline): 600 clips of espeak-ng's
  synthetic speech, 60 voice/speed/pitch settings (data/README.md). Test set:
  12 whole settings, 120 clips, voice variants never seen in training: every
  setting of `en-gb-scotland` and of `en-us+f2`, plus `en-029/s130/p65` and
  `en+m3/s190/p35`.
* `spoken_digit` (tfds `spoken_digit`, the Free Spoken Digit Dataset v1.0.9:
  2,500 real recordings, 5 speakers, 8 kHz). It has no official split; here
  the split is by speaker: every recording of `theo` (500) is the test set,
  the other four speakers train, so test voices are never heard in training.

Your own files (--data_source=files --data_dir=DIR), WAV files of any sample
rate, channel count and 8/16/24/32-bit PCM, in one of these layouts:

* `DIR/<class>/*.wav` (tf.keras.utils.audio_dataset_from_directory's layout),
  class folders named 0-9 or zero-nine: every fifth file of each class (a
  fixed seeded choice) is the test set;
* `DIR/train/<class>/*.wav` and `DIR/test/<class>/*.wav`: your own split;
* the FSDD repository's flat `recordings/` folder of `<digit>_<speaker>_<n>.wav`
  files: the same speaker split as the tfds source.
"""
import io
import os
import re
import sys
import wave

import numpy as np

from common.datasets.images import verified_path
from common.datasets.registry import ArraySplits, DatasetSpec, register
from common.errors import UserError

SAMPLE_RATE = 8000
CLIP_SECONDS = 1.0
CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)
# A clip whose speech (silence trimmed) lasts longer than this is not one spoken digit.
MAX_SPEECH_SECONDS = 1.5
SILENT_PEAK = 10 ** (-60 / 20)  # a clip whose loudest sample is below -60 dBFS holds no speech
CLASS_NAMES = tuple(str(d) for d in range(10))
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

BUNDLED_FILE = ("spoken_digits_espeak.npz",
                "9b92361f49decd297bcecd10a41edb05cdb80b5d06d838a8ae834bcdf6176571")
HELDOUT_VOICES = ("en-gb-scotland", "en-us+f2")
HELDOUT_SETTINGS = ("en-029/s130/p65", "en+m3/s190/p35")
FSDD_TEST_SPEAKERS = ("theo",)
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$", re.IGNORECASE)
FILES_TEST_EVERY = 5  # files layout without a train/test split: 1 in 5 files per class is test


# ## Waveforms: decode, convert, trim, fix the length


def mulaw_decode(codes, mu=255):
  """uint8 mu-law codes (mu = 255) -> float32 samples in [-1, 1]."""
  y = 2.0 * np.asarray(codes, dtype=np.float32) / mu - 1.0
  return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


def resample(x, rate_in, rate_out=SAMPLE_RATE):
  """Band-limited resampling through the FFT (exact for a clip's length of a few seconds)."""
  if rate_in == rate_out or len(x) == 0:
    return np.asarray(x, np.float32)
  n_out = max(1, int(round(len(x) * rate_out / rate_in)))
  spectrum = np.fft.rfft(x)
  kept = np.zeros(n_out // 2 + 1, dtype=spectrum.dtype)
  n = min(len(kept), len(spectrum))
  kept[:n] = spectrum[:n]
  return (np.fft.irfft(kept, n_out) * (n_out / len(x))).astype(np.float32)


def trim_silence(x, frame=80, threshold_db=-45.0, keep=160):
  """Drops leading/trailing 10 ms frames 45 dB below the loudest, keeping 20 ms around speech."""
  n = len(x) // frame
  if n == 0:
    return x
  rms = np.sqrt(np.mean(np.reshape(x[:n * frame], (n, frame)) ** 2, axis=1))
  loud = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20))
  if len(loud) == 0:
    return x
  return x[max(0, loud[0] * frame - keep):min(len(x), (loud[-1] + 1) * frame + keep)]


def prepare_clip(x, rate, *, name="clip", strict=False):
  """Any waveform -> float32 (CLIP_SAMPLES,) at 8 kHz: the model's input.

  Empty or silent clips raise UserError. A clip whose trimmed speech is longer
  than CLIP_SECONDS is cut; with strict=True (prediction) one longer than
  MAX_SPEECH_SECONDS raises UserError instead, since it cannot be one digit.
  """
  x = np.asarray(x, dtype=np.float32)
  if x.ndim == 2:
    x = x.mean(axis=1)
  if len(x) == 0:
    raise UserError(f"{name}: the audio is empty (no samples); record one spoken digit")
  if np.max(np.abs(x)) < SILENT_PEAK:
    raise UserError(f"{name}: the audio is silent (peak below -60 dBFS); nothing to classify")
  x = trim_silence(resample(x, rate))
  seconds = len(x) / SAMPLE_RATE
  if strict and seconds > MAX_SPEECH_SECONDS:
    raise UserError(f"{name}: {seconds:.1f} s of sound after trimming silence, far longer than "
                    f"the {CLIP_SECONDS:.1f} s clips the model was trained on; cut it to one "
                    "spoken digit")
  return fix_length(x)


def fix_length(x, length=CLIP_SAMPLES):
  """Zero-pads at the front, or cuts the front: pad_sequences' defaults (padding="pre",
  truncating="pre"), so every clip ends with its speech and a recurrent model's last
  step comes right after it."""
  out = np.zeros(length, np.float32)
  kept = x[-length:]
  out[length - len(kept):] = kept
  return out


def read_wav(path):
  """(samples float32 (n,) or (n, channels), sample rate) from a PCM WAV file."""
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except FileNotFoundError as e:
    raise UserError(f"audio file {path} not found") from e
  except OSError as e:
    raise UserError(f"cannot read {path}: {e.strerror}") from e
  try:
    with wave.open(io.BytesIO(raw), "rb") as w:
      width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
      frames = w.readframes(w.getnframes())
  except (wave.Error, EOFError) as e:
    raise UserError(f"{path} is not a readable WAV file ({e}); convert it to PCM WAV, e.g. "
                    "`ffmpeg -i in.mp3 -ac 1 -ar 8000 out.wav`") from e
  if width == 1:  # 8-bit WAV is unsigned
    x = (np.frombuffer(frames, np.uint8).astype(np.float32) - 128) / 128
  elif width in (2, 4):
    x = np.frombuffer(frames, f"<i{width}").astype(np.float32) / 2 ** (8 * width - 1)
  elif width == 3:
    b = np.frombuffer(frames, np.uint8).reshape(-1, 3).astype(np.int32)
    x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 2 ** 23
  else:
    raise UserError(f"{path}: {8 * width}-bit samples are not supported; use 16-bit PCM")
  return x.reshape(-1, channels) if channels > 1 else x, rate


def load_wav(path, strict=True):
  x, rate = read_wav(path)
  return prepare_clip(x, rate, name=path, strict=strict)


def _stack(clips, labels):
  return (np.stack(clips).astype(np.float32) if clips else np.zeros((0, CLIP_SAMPLES), np.float32),
          np.asarray(labels, np.int64))


# ## Bundled espeak-ng sample


def heldout_setting_ids(setting_names):
  return np.asarray([i for i, name in enumerate(setting_names)
                     if str(name).split("/")[0] in HELDOUT_VOICES
                     or str(name) in HELDOUT_SETTINGS], dtype=np.int64)


def load_espeak():
  """The bundled clips, split by setting: test = the 12 held-out voice settings."""
  with np.load(verified_path(*BUNDLED_FILE), allow_pickle=False) as data:
    codes, offsets, labels = data["audio"], data["offsets"], data["labels"]
    setting, names, rate = data["setting"], data["setting_names"], int(data["sample_rate"])
  clips = [prepare_clip(mulaw_decode(codes[a:b]), rate) for a, b in zip(offsets[:-1], offsets[1:])]
  test = np.isin(setting, heldout_setting_ids(names))
  train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
  return ArraySplits(train=_stack([clips[i] for i in train_idx], labels[train_idx]),
                     test=_stack([clips[i] for i in test_idx], labels[test_idx]))


# ## Free Spoken Digit Dataset (tfds or the repository's recordings/ folder)


def fsdd_split(filenames):
  """Boolean test mask: recordings of FSDD_TEST_SPEAKERS, from names <digit>_<speaker>_<n>.wav."""
  speakers = [FSDD_NAME.match(os.path.basename(str(f))).group(2).lower() for f in filenames]
  return np.isin(speakers, FSDD_TEST_SPEAKERS)


def _split_by_mask(clips, labels, test_mask):
  train = [i for i in range(len(clips)) if not test_mask[i]]
  test = [i for i in range(len(clips)) if test_mask[i]]
  return ArraySplits(train=_stack([clips[i] for i in train], [labels[i] for i in train]),
                     test=_stack([clips[i] for i in test], [labels[i] for i in test]))


def load_fsdd_tfds(data_dir=None):
  """FSDD from tensorflow-datasets, into memory (2,500 clips, about 80 MB as float32)."""
  from common.datasets import tfds_source
  builder = tfds_source.prepared_builder("spoken_digit", data_dir, SPOKEN_DIGIT.offline_help)
  clips, labels, names = [], [], []
  for example in builder.as_dataset(split="train", shuffle_files=False).as_numpy_iterator():
    names.append(example["audio/filename"].decode())
    clips.append(prepare_clip(example["audio"].astype(np.float32) / 32768, SAMPLE_RATE,
                              name=names[-1]))
    labels.append(int(example["label"]))
  order = np.argsort(names)  # a fixed order whatever order tfds reads its shards in
  return _split_by_mask([clips[i] for i in order], [labels[i] for i in order],
                        fsdd_split([names[i] for i in order]))


# ## Your own WAV files


def _class_of(folder):
  name = folder.lower()
  if name in CLASS_NAMES:
    return int(name)
  if name in WORDS:
    return WORDS.index(name)
  return None


def _read_class_folders(root):
  """[(path, label)] from root/<class>/*.wav; UserError when a folder is not a digit."""
  items = []
  for folder in sorted(os.listdir(root)):
    if not os.path.isdir(os.path.join(root, folder)):
      continue
    label = _class_of(folder)
    if label is None:
      raise UserError(f"{root}/{folder}: class folders must be named 0-9 or zero-nine")
    items += [(os.path.join(root, folder, f), label)
              for f in sorted(os.listdir(os.path.join(root, folder))) if f.lower().endswith(".wav")]
  return items


def _read(items):
  return [load_wav(path, strict=False) for path, _ in items], [label for _, label in items]


def load_files(data_dir):
  if not os.path.isdir(data_dir):
    raise UserError(f"{data_dir} is not a folder; pass --data_dir=FOLDER with {FILES_HELP}")
  entries = os.listdir(data_dir)
  flat = sorted(f for f in entries if FSDD_NAME.match(f))
  if os.path.isdir(os.path.join(data_dir, "train")) and os.path.isdir(
      os.path.join(data_dir, "test")):
    train = _read_class_folders(os.path.join(data_dir, "train"))
    test = _read_class_folders(os.path.join(data_dir, "test"))
    arrays = ArraySplits(train=_stack(*_read(train)), test=_stack(*_read(test)))
  elif flat:
    clips, labels = _read([(os.path.join(data_dir, f), int(f[0])) for f in flat])
    arrays = _split_by_mask(clips, labels, fsdd_split(flat))
  else:
    items = _read_class_folders(data_dir)
    test_mask = np.zeros(len(items), bool)
    labels = np.asarray([label for _, label in items])
    rng = np.random.default_rng(0)
    for c in np.unique(labels):
      members = np.flatnonzero(labels == c)
      test_mask[rng.permutation(members)[:len(members) // FILES_TEST_EVERY]] = True
    clips, labels = _read(items)
    arrays = _split_by_mask(clips, labels, test_mask)
  if len(arrays.train[1]) == 0 or len(arrays.test[1]) == 0:
    raise UserError(f"{data_dir}: found no WAV files for training or testing; expected "
                    f"{FILES_HELP}")
  print(f"data: read {len(arrays.train[1]) + len(arrays.test[1])} WAV files from {data_dir}",
        file=sys.stderr)
  return arrays


FILES_HELP = ("WAV files in class folders 0-9 (or zero-nine) as audio_dataset_from_directory "
              "reads them, optionally under train/ and test/, or FSDD's flat recordings/ folder "
              "of <digit>_<speaker>_<n>.wav")

SPOKEN_DIGIT_ESPEAK = register(DatasetSpec(
    name="spoken_digit_espeak", class_names=CLASS_NAMES, load_bundled=load_espeak,
    load_files=load_files, files_help=FILES_HELP,
    offline_help="The synthetic sample is in the repository: --data_source=bundled."))

SPOKEN_DIGIT = register(DatasetSpec(
    name="spoken_digit", class_names=CLASS_NAMES, tfds_name="spoken_digit",
    load_tfds=load_fsdd_tfds, load_files=load_files, files_help=FILES_HELP,
    offline_help="Offline: --dataset=spoken_digit_espeak (bundled), or clone "
                 "https://github.com/Jakobovski/free-spoken-digit-dataset and pass "
                 "--data_source=files --data_dir=free-spoken-digit-dataset/recordings."))
