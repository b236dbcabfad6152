"""The spoken-digit LSTM: front-end, codebook, variants, data sources, predict, bad inputs.

Tiny generated clips (a tone per digit, plus a noise burst) go through the
whole pipeline; only one test reads the bundled sample and two use the CLI.
"""
import json
import wave

import keras
import numpy as np
import pytest

from common import datasets
from common.datasets import audio
from common.errors import UserError
from examples import speech_lstm
from tests.conftest import assert_user_error, cli

RATE = audio.SAMPLE_RATE


def tone(digit, seconds=0.4, rate=RATE, seed=0):
  """A digit's 'word': a tone at 300 + 300*digit Hz followed by a short noise burst."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * rate)) / rate
  x = 0.5 * np.sin(2 * np.pi * (300 + 300 * digit) * t) * rng.uniform(0.3, 1.0)
  burst = 0.2 * rng.standard_normal(int(0.05 * rate))
  return np.concatenate([x, burst]).astype(np.float32)


def tiny_arrays(per_class_train=4, per_class_test=2):
  def make(n, offset):
    clips = [audio.prepare_clip(tone(d, 0.2 + 0.1 * (i % 4), seed=offset + 10 * i + d), RATE)
             for i in range(n) for d in range(10)]
    return np.stack(clips), np.tile(np.arange(10), n).astype(np.int64)
  return datasets.ArraySplits(train=make(per_class_train, 0), test=make(per_class_test, 1000))


@pytest.fixture(scope="module")
def tiny():
  spec = datasets.get("spoken_digit_espeak")
  return datasets.from_arrays(spec, tiny_arrays(), source="bundled", seed=0, validation_split=0.2)


def write_wav(path, x, rate=RATE, channels=1, width=2):
  x = np.asarray(x, np.float64)
  if channels == 2:
    x = np.stack([x, 0.5 * x], axis=1)
  if width == 1:
    data = np.clip(x * 127 + 128, 0, 255).astype(np.uint8).tobytes()
  else:
    data = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
  with wave.open(str(path), "wb") as w:
    w.setnchannels(channels)
    w.setsampwidth(width)
    w.setframerate(rate)
    w.writeframes(data)
  return str(path)


# ## Front-end and codebook


def test_log_mel_gives_100_frames_of_40_bins_whatever_the_loudness():
  clip = audio.prepare_clip(tone(3), RATE)
  frames = np.asarray(speech_lstm.LogMel()(np.stack([clip, 0.1 * clip])))
  assert frames.shape == (2, 100, 40) == (2, speech_lstm.SEQUENCE_LENGTH, speech_lstm.MEL_BINS)
  np.testing.assert_allclose(frames[0], frames[1], atol=1e-3)  # peak-normalised inside


def test_codebook_tokens_pick_the_nearest_code():
  layer = speech_lstm.CodebookTokens(3)
  frames = np.array([[[0.0, 0.1], [5.0, 4.8], [-3.0, 0.0], [4.0, 6.0]]], np.float32)
  layer.build(frames.shape)
  layer.set_codebook([[0, 0], [5, 5], [-3, 0]])
  assert np.asarray(layer(frames)).tolist() == [[0, 1, 2, 1]]


def test_kmeans_is_deterministic_and_finds_clusters():
  rng = np.random.default_rng(0)
  centres = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
  points = np.concatenate([c + 0.1 * rng.standard_normal((50, 2)) for c in centres])
  a, b = speech_lstm.kmeans(points, 3, seed=1), speech_lstm.kmeans(points, 3, seed=1)
  np.testing.assert_array_equal(a, b)
  found = np.sort(np.round(a).astype(int), axis=0)
  np.testing.assert_array_equal(found, np.sort(centres.astype(int), axis=0))


@pytest.mark.parametrize("variant,trainable,fixed", [
    ("document", 22_602, 40_081), ("mel", 9_674, 81), ("conv_lstm", 15_082, 81)])
def test_parameter_counts(variant, trainable, fixed):
  head = speech_lstm.ClassifierHead(audio.CLASS_NAMES, one_hot=True)
  model = speech_lstm.build_model(variant, head, "spoken_digit_espeak",
                                  speech_lstm.VARIANTS[variant])
  counts = speech_lstm.parameter_counts(model)
  assert counts == {"parameters": trainable, "non_trainable_parameters": fixed}
  assert model.name == f"speech_lstm_{variant}__spoken_digit_espeak"


# ## Training end to end


def test_document_trains_saves_reloads_and_fits_its_codebook_on_training_frames_only(
    fresh_flags, tmp_path, tiny, monkeypatch):
  seen = []
  real_kmeans = speech_lstm.kmeans
  monkeypatch.setattr(speech_lstm, "kmeans",
                      lambda points, k, seed: seen.append(points) or real_kmeans(points, k, seed))
  fv = fresh_flags(speech_lstm, "--epochs=2", f"--output_dir={tmp_path}", "--strategy=cpu",
                   "--codebook_size=64")
  stats = speech_lstm.run(fv, datasets_override=tiny)

  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["sizes"] == {"train": 32, "validation": 8, "test": 20}
  assert saved["epochs"] == 2 and saved["settings"]["codebook_size"] == 64
  assert saved["parameters"] == 64 * 16 + 6_272 + 330
  assert np.sum(saved["confusion_matrix"]) == 20 and stats["test"] == saved["test"]
  for name in ("model.keras", "training_curves.png", "confusion_matrix.png", "training_log.csv"):
    assert (tmp_path / name).exists(), name

  model = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
  train_x, _ = tiny.arrays.train
  expected = np.asarray(model.get_layer("frame_norm")(model.get_layer("log_mel")(train_x)))
  (points,) = seen
  assert points.shape == (32 * 100, 40)  # the 32 training clips only: no validation, no test
  np.testing.assert_allclose(points, expected.reshape(-1, 40), atol=1e-4)
  codebook = model.get_layer("codebook_tokens").codebook.numpy()
  assert codebook.shape == (64, 40) and np.abs(codebook).sum() > 0

  # training ran the front-end once in the pipeline; the saved models still take waveforms
  test_x, test_y = tiny.arrays.test
  accuracy = np.mean(model.predict(test_x, verbose=0).argmax(-1) == test_y)
  assert accuracy == pytest.approx(stats["test"]["accuracy"], abs=1e-6)
  for name in ("best.keras", "last.keras"):
    checkpoint = keras.models.load_model(tmp_path / "checkpoints" / name, safe_mode=True)
    assert checkpoint.input_shape[1:] == speech_lstm.INPUT_SHAPE, name


def test_mel_variant_learns_the_tones(fresh_flags, tmp_path):
  spec = datasets.get("spoken_digit_espeak")
  splits = datasets.from_arrays(spec, tiny_arrays(per_class_train=8), source="bundled", seed=0,
                                validation_split=0.0)
  fv = fresh_flags(speech_lstm, "--variant=mel", "--epochs=12", "--batch_size=16",
                   "--learning_rate=0.01", f"--output_dir={tmp_path}", "--strategy=cpu")
  assert speech_lstm.run(fv, datasets_override=splits)["test"]["accuracy"] >= 0.5


# ## Data sources


def test_bundled_split_holds_out_whole_voice_settings():
  with np.load(audio.verified_path(*audio.BUNDLED_FILE)) as data:
    names, setting = data["setting_names"], data["setting"]
  held = audio.heldout_setting_ids(names)
  assert held.tolist() == [15, 16, 17, 18, 19, 22, 43, 45, 46, 47, 48, 49]
  arrays = audio.load_espeak()
  assert arrays.train[0].shape == (480, 8000) and arrays.test[0].shape == (120, 8000)
  assert np.bincount(arrays.test[1]).tolist() == [12] * 10
  assert np.isin(setting, held).sum() == 120


def test_files_source_reads_class_folders_any_rate_and_channels(tmp_path):
  for d in range(10):
    (tmp_path / "digits" / str(d)).mkdir(parents=True)
    for i in range(5):
      write_wav(tmp_path / "digits" / str(d) / f"{i}.wav", tone(d, seed=i),
                rate=(8000, 16000, 22050)[i % 3], channels=1 + i % 2)
  splits = datasets.load("spoken_digit", source="files", data_dir=str(tmp_path / "digits"),
                         validation_split=0.0)
  assert splits.sizes == {"train": 40, "validation": 0, "test": 10}
  x, y = splits.arrays.test
  assert x.shape == (10, 8000) and sorted(y.tolist()) == list(range(10))
  (tmp_path / "digits" / "eleven").mkdir()
  with pytest.raises(UserError, match="named 0-9 or zero-nine"):
    audio.load_files(str(tmp_path / "digits"))


def test_fsdd_recordings_folder_is_split_by_speaker(tmp_path):
  for speaker in ("jackson", "theo"):
    for d in range(10):
      write_wav(tmp_path / f"{d}_{speaker}_0.wav", tone(d))
  arrays = audio.load_files(str(tmp_path))
  assert len(arrays.train[1]) == 10 and len(arrays.test[1]) == 10
  assert audio.fsdd_split(["1_theo_3.wav", "2_jackson_0.wav"]).tolist() == [True, False]


def test_fsdd_from_tfds_is_read_into_memory_and_split_by_speaker(monkeypatch):
  import tensorflow as tf
  from common.datasets import tfds_source
  names = [f"{d}_{s}_{i}.wav" for s in ("theo", "george") for d in range(10) for i in range(2)]
  examples = {"audio": np.stack([(tone(int(n[0]), 0.3) * 32767).astype(np.int64) for n in names]),
              "label": np.array([int(n[0]) for n in names]), "audio/filename": np.array(names)}

  class FakeBuilder:
    def as_dataset(self, split, shuffle_files):
      assert split == "train" and not shuffle_files
      return tf.data.Dataset.from_tensor_slices(examples)

  monkeypatch.setattr(tfds_source, "prepared_builder", lambda *args: FakeBuilder())
  splits = datasets.load("spoken_digit", source="tfds", validation_split=0.0)
  assert splits.source == "tfds" and splits.sizes == {"train": 20, "validation": 0, "test": 20}
  assert splits.arrays.test[0].shape == (20, 8000)


def test_spoken_digit_offline_names_the_ways_out():
  with pytest.raises(UserError, match="spoken_digit_espeak"):
    datasets.load("spoken_digit")


def test_clip_preparation_pads_at_the_front_and_rejects_bad_audio():
  clip = audio.prepare_clip(tone(2, 0.3), RATE)
  assert clip.shape == (8000,) and clip[0] == 0 and np.abs(clip[-500:]).max() > 0.01
  same = audio.prepare_clip(audio.resample(tone(2, 0.3), RATE, 44100), 44100)
  assert np.abs(same - clip).max() < 0.05
  with pytest.raises(UserError, match="empty"):
    audio.prepare_clip(np.zeros(0), RATE)
  with pytest.raises(UserError, match="silent"):
    audio.prepare_clip(np.zeros(4000), RATE)
  with pytest.raises(UserError, match="far longer"):
    audio.prepare_clip(tone(1, 3.0), RATE, strict=True)
  assert audio.prepare_clip(tone(1, 3.0), RATE).shape == (8000,)  # training data: cut


# ## Predict and bad inputs


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, tiny):
  from absl import flags
  out = tmp_path_factory.mktemp("trained")
  fv = flags.FlagValues()
  speech_lstm.define_flags(fv)
  fv(["prog", "--variant=conv_lstm", "--epochs=1", f"--output_dir={out}", "--strategy=cpu"])
  speech_lstm.run(fv, datasets_override=tiny)
  return str(out / "model.keras")


def test_predict_prints_one_line_per_file(trained_model, tmp_path, fresh_flags, capsys):
  paths = [write_wav(tmp_path / "a.wav", tone(4)),
           write_wav(tmp_path / "b.wav", tone(7), rate=44100, channels=2),
           write_wav(tmp_path / "c.wav", tone(1), rate=11025, width=1)]
  stats = speech_lstm.run(fresh_flags(speech_lstm, "--mode=predict", f"--model={trained_model}",
                                      f"--wav={','.join(paths)}"))
  lines = capsys.readouterr().out.strip().splitlines()
  assert [p["file"] for p in stats["predictions"]] == paths
  for path, line in zip(paths, lines):
    assert line.startswith(path + ": ") and "probability" in line
  assert all(0.0 < p["probability"] <= 1.0 for p in stats["predictions"])


def test_bad_inputs_name_the_problem(trained_model, tmp_path, fresh_flags):
  good = write_wav(tmp_path / "ok.wav", tone(3))
  (tmp_path / "notes.wav").write_text("plain text")
  other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)], name="something_else")
  other.save(tmp_path / "other.keras")
  cases = [
      (write_wav(tmp_path / "empty.wav", np.zeros(0)), "empty"),
      (write_wav(tmp_path / "silent.wav", np.zeros(8000)), "silent"),
      (write_wav(tmp_path / "long.wav", tone(5, 4.0)), "far longer"),
      (str(tmp_path / "notes.wav"), "not a readable WAV file"),
      (str(tmp_path / "gone.wav"), "gone.wav not found"),
  ]
  for path, message in cases:
    with pytest.raises(UserError, match=message):
      speech_lstm.run(fresh_flags(speech_lstm, "--mode=predict", f"--model={trained_model}",
                                  f"--wav={good},{path}"))
  with pytest.raises(UserError, match="not a speech_lstm model"):
    speech_lstm.run(fresh_flags(speech_lstm, "--mode=predict",
                                f"--model={tmp_path}/other.keras", f"--wav={good}"))


def test_command_line_dry_run_then_predict(tmp_path):
  out = tmp_path / "run"
  proc = cli("speech_lstm.py", "--dry_run", "--variant=mel", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr
  assert "data: spoken_digit_espeak from bundled: 256 train" in proc.stderr
  wav = write_wav(tmp_path / "x.wav", tone(0))
  proc = cli("speech_lstm.py", "--mode=predict", f"--model={out}/model.keras",
             f"--wav={wav},{tmp_path}/nothing.wav")
  assert_user_error(proc, "nothing.wav not found")
  assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: ")
  assert_user_error(cli("speech_lstm.py", "--mode=predict", f"--model={out}/model.keras"),
                    "--mode=predict needs --wav")


# ## Tune with keras-tuner


@pytest.mark.parametrize("variant,trainable", [
    ("document", 22_602), ("mel", 9_674), ("conv_lstm", 15_082)])
def test_default_hyperparameters_rebuild_the_variants_model(variant, trainable):
  from common import tuning
  head = speech_lstm.ClassifierHead(audio.CLASS_NAMES, one_hot=True)
  settings = speech_lstm.VARIANTS[variant]
  hypermodel = tuning.HyperModel(
      lambda hp: speech_lstm.build_model(variant, head, "spoken_digit_espeak", settings, hp=hp),
      head, settings, batches=None)
  model = hypermodel.build(tuning.hyperparameters())
  assert speech_lstm.parameter_counts(model)["parameters"] == trainable
  assert type(model.optimizer).__name__ == "Adam"
  assert float(model.optimizer.learning_rate) == pytest.approx(0.001)


@pytest.mark.parametrize("variant,searched", [
    ("document", {"units", "embedding_dim"}), ("conv_lstm", {"units", "filters", "kernel_size"})])
def test_tune_learns_the_codebook_once_then_retrains_the_best(fresh_flags, tmp_path, tiny,
                                                              monkeypatch, variant, searched):
  seen = []
  real_kmeans = speech_lstm.kmeans
  monkeypatch.setattr(speech_lstm, "kmeans",
                      lambda points, k, seed: seen.append(k) or real_kmeans(points, k, seed))
  common = (f"--variant={variant}", "--codebook_size=64", "--strategy=cpu")
  stats = speech_lstm.run(fresh_flags(speech_lstm, "--mode=tune", "--max_trials=2",
                                      "--tune_epochs=1", f"--output_dir={tmp_path}", *common),
                          datasets_override=tiny)
  assert seen == ([64] if variant == "document" else [])  # one k-means, shared by every trial
  assert stats["trials"] == 2 and 0 <= stats["default_score"] <= 1
  best = json.loads((tmp_path / "best_hparams.json").read_text())
  assert set(best) == searched | {"learning_rate", "batch_size"} and best == stats["best_hparams"]
  assert len((tmp_path / "trials.csv").read_text().strip().splitlines()) == 1 + 2

  out = tmp_path / "retrain"
  result = speech_lstm.run(fresh_flags(speech_lstm, "--epochs=1", f"--output_dir={out}",
                                       f"--hparams={tmp_path}/best_hparams.json", *common),
                           datasets_override=tiny)
  settings = result["settings"]
  assert settings["hparams"] == best and settings["batch_size"] == best["batch_size"]
  assert settings["learning_rate"] == pytest.approx(best["learning_rate"])
  model = keras.models.load_model(out / "model.keras", safe_mode=True)
  assert model.get_layer("lstm").units == best["units"]
  if variant == "document":
    assert model.get_layer("embedding").output_dim == best["embedding_dim"]
  else:
    assert model.get_layer("conv").filters == best["filters"]
    assert model.get_layer("conv").kernel_size == (best["kernel_size"],)
