#!/usr/bin/env python3
"""Generate the small offline spoken-digit dataset ``data/spoken_digits_espeak.npz``.

The English words "zero" .. "nine" are spoken by the espeak-ng speech
synthesizer over 60 voice/speed/pitch settings (12 voices x 5 speed/pitch
pairs), giving 600 clips.  Each clip is

1. synthesized with ``espeak-ng -v VOICE -s SPEED -p PITCH -w clip.wav WORD``
   (22050 Hz, 16-bit, mono),
2. resampled to 8000 Hz with a Kaiser-windowed sinc filter (numpy only),
3. trimmed of leading/trailing silence (10 ms frame RMS below -45 dB of the
   loudest frame; 20 ms of padding kept on each side),
4. peak-normalized to 0.9 of full scale,
5. stored as 8-bit mu-law (mu = 255) in one uint8 array.

Output arrays (npz, deflate-compressed, fixed zip timestamps, no pickles):

    audio          uint8  (total_samples,)  concatenated mu-law samples
    offsets        int64  (n + 1,)          clip i is audio[offsets[i]:offsets[i+1]]
    labels         int64  (n,)              digit 0..9
    setting        int32  (n,)              index into setting_names
    setting_names  <U..   (n_settings,)     e.g. "en-us+f2/s160/p50"
    sample_rate    int64  ()                8000

Usage:
    python3 scripts/make_speech_sample.py --out data/spoken_digits_espeak.npz

Requires only Python 3, numpy and the ``espeak-ng`` command.  The mu-law
functions below (``mulaw_encode`` / ``mulaw_decode``) have no dependency
beyond numpy and may be copied as they are.  The output is deterministic for
a given espeak-ng version (made with Debian espeak-ng 1.51+dfsg-10+deb12u2).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import wave
import zipfile

import numpy as np

WORDS = ["zero", "one", "two", "three", "four",
         "five", "six", "seven", "eight", "nine"]

# 12 espeak-ng voices: 7 English accents and 5 accent+variant combinations
# ("+f3" etc. are espeak-ng voice variants, see `espeak-ng --voices=variant`).
VOICES = [
    "en",              # British English (default)
    "en-us",           # American English
    "en-gb-x-rp",      # Received Pronunciation
    "en-gb-scotland",  # Scottish English
    "en-029",          # Caribbean English
    "en-gb-x-gbclan",  # Lancastrian English
    "en-gb-x-gbcwmd",  # West Midlands English
    "en+f3",           # British, female variant 3
    "en+m3",           # British, male variant 3
    "en-us+f2",        # American, female variant 2
    "en-gb-x-rp+f4",   # RP, female variant 4
    "en-us+klatt",     # American, Klatt-synthesizer variant
]

# 5 (words-per-minute, pitch 0..99) pairs per voice: the centre and the four
# corners of the grid {130, 160, 190} x {35, 50, 65}.
SPEED_PITCH = [(160, 50), (130, 35), (130, 65), (190, 35), (190, 65)]

# Suggested held-out (test) settings: 12 of the 60 settings.
#  * every setting of two whole voices (never seen in training):
#    "en-gb-scotland" (an unseen accent) and "en-us+f2" (an unseen
#    female variant) -> 10 settings;
#  * plus two single settings of other voices:
#    "en-029/s130/p65" and "en+m3/s190/p35" -> 2 settings.
HELDOUT_VOICES = ("en-gb-scotland", "en-us+f2")
HELDOUT_EXTRA = ("en-029/s130/p65", "en+m3/s190/p35")

SAMPLE_RATE = 8000
MU = 255


# --------------------------------------------------------------------------
# mu-law companding (mu = 255), 8 bits.
#
#   encode:  y = sign(x) * ln(1 + mu*|x|) / ln(1 + mu)      x in [-1, 1]
#            q = round((y + 1) / 2 * mu)                   q in {0..255}, uint8
#   decode:  y = 2 * q / mu - 1
#            x = sign(y) * ((1 + mu) ** |y| - 1) / mu
# --------------------------------------------------------------------------
def mulaw_encode(x, mu=MU):
    """float array in [-1, 1] -> uint8 mu-law codes (0..255)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.rint((y + 1.0) / 2.0 * mu).astype(np.uint8)


def mulaw_decode(q, mu=MU):
    """uint8 mu-law codes (0..255) -> float32 array in [-1, 1]."""
    y = 2.0 * np.asarray(q, dtype=np.float32) / mu - 1.0
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


# --------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------
def settings():
    """List of (name, voice, speed, pitch); the index is the setting id."""
    out = []
    for voice in VOICES:
        for speed, pitch in SPEED_PITCH:
            out.append((f"{voice}/s{speed}/p{pitch}", voice, speed, pitch))
    return out


def heldout_setting_ids(setting_names):
    """Ids of the suggested test settings (see HELDOUT_VOICES / HELDOUT_EXTRA)."""
    ids = []
    for i, name in enumerate(setting_names):
        voice = str(name).split("/")[0]
        if voice in HELDOUT_VOICES or str(name) in HELDOUT_EXTRA:
            ids.append(i)
    return np.asarray(ids, dtype=np.int32)


# --------------------------------------------------------------------------
# audio processing (numpy only)
# --------------------------------------------------------------------------
def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM")
        rate, nch = w.getframerate(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    x = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    if nch > 1:
        x = x.reshape(-1, nch).mean(axis=1)
    return x, rate


def resample(x, rate_in, rate_out, zero_crossings=16, beta=8.0):
    """Band-limited resampling with a Kaiser-windowed sinc (cutoff 0.45*min rate)."""
    if rate_in == rate_out:
        return x.copy()
    cutoff = 0.45 * min(rate_in, rate_out)          # Hz
    fc = cutoff / rate_in                            # cycles per input sample
    half = int(np.ceil(zero_crossings / (2.0 * fc)))  # half-width, input samples
    n_out = int(np.floor(len(x) * rate_out / rate_in))
    t = np.arange(n_out) * (rate_in / rate_out)      # output times in input samples
    base = np.floor(t).astype(np.int64)
    k = base[:, None] + np.arange(-half + 1, half + 1)[None, :]
    u = t[:, None] - k                                # distance, |u| <= half
    win = np.i0(beta * np.sqrt(np.clip(1.0 - (u / half) ** 2, 0.0, None))) / np.i0(beta)
    h = 2.0 * fc * np.sinc(2.0 * fc * u) * win
    valid = (k >= 0) & (k < len(x))
    xs = np.where(valid, x[np.clip(k, 0, len(x) - 1)], 0.0)
    return (xs * h).sum(axis=1)


def trim_silence(x, rate, frame_ms=10, rel_db=-45.0, pad_ms=20):
    """Drop leading/trailing frames whose RMS is rel_db below the loudest frame."""
    flen = int(rate * frame_ms / 1000)
    nf = len(x) // flen
    if nf == 0:
        return x
    rms = np.sqrt((x[: nf * flen].reshape(nf, flen) ** 2).mean(axis=1))
    thr = rms.max() * 10.0 ** (rel_db / 20.0)
    loud = np.nonzero(rms > thr)[0]
    if len(loud) == 0:
        return x
    pad = int(rate * pad_ms / 1000)
    start = max(0, loud[0] * flen - pad)
    stop = min(len(x), (loud[-1] + 1) * flen + pad)
    return x[start:stop]


def synth(word, voice, speed, pitch, tmpdir):
    path = os.path.join(tmpdir, "clip.wav")
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, word]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return read_wav(path)


def make_clip(word, voice, speed, pitch, tmpdir):
    x, rate = synth(word, voice, speed, pitch, tmpdir)
    x = resample(x, rate, SAMPLE_RATE)
    x = trim_silence(x, SAMPLE_RATE)
    peak = np.abs(x).max()
    if peak > 0:
        x = x * (0.9 / peak)
    return mulaw_encode(x)


# --------------------------------------------------------------------------
# deterministic npz writer (np.savez_compressed stamps the current time)
# --------------------------------------------------------------------------
def save_npz_deterministic(path, arrays):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED,
                        compresslevel=9)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="data/spoken_digits_espeak.npz")
    args = ap.parse_args(argv)

    version = subprocess.run(["espeak-ng", "--version"], check=True,
                             capture_output=True, text=True).stdout.strip()
    print(version)

    sets = settings()
    setting_names = np.array([s[0] for s in sets])
    clips, labels, setting_ids = [], [], []
    with tempfile.TemporaryDirectory() as tmpdir:
        for sid, (name, voice, speed, pitch) in enumerate(sets):
            for digit, word in enumerate(WORDS):
                clips.append(make_clip(word, voice, speed, pitch, tmpdir))
                labels.append(digit)
                setting_ids.append(sid)
            print(f"  [{sid + 1:2d}/{len(sets)}] {name}", file=sys.stderr)

    lengths = np.array([len(c) for c in clips], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    arrays = {
        "audio": np.concatenate(clips).astype(np.uint8),
        "offsets": offsets,
        "labels": np.array(labels, dtype=np.int64),
        "setting": np.array(setting_ids, dtype=np.int32),
        "setting_names": setting_names,
        "sample_rate": np.array(SAMPLE_RATE, dtype=np.int64),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_npz_deterministic(args.out, arrays)

    dur = lengths / SAMPLE_RATE
    labels_a = arrays["labels"]
    held = heldout_setting_ids(setting_names)
    test_mask = np.isin(arrays["setting"], held)
    print(f"clips: {len(clips)}  settings: {len(sets)}  voices: {len(VOICES)}")
    print("clips per digit: " + " ".join(
        f"{d}:{int((labels_a == d).sum())}" for d in range(10)))
    print(f"duration s: min {dur.min():.3f}  median {np.median(dur):.3f}  "
          f"max {dur.max():.3f}  total {dur.sum():.1f}")
    print(f"held-out settings ({len(held)}): "
          + ", ".join(str(setting_names[i]) for i in held))
    print(f"split: train {int((~test_mask).sum())} clips, test {int(test_mask.sum())} clips")
    print("audio content sha256: " + hashlib.sha256(arrays["audio"].tobytes()).hexdigest())
    print(f"file: {args.out}  {os.path.getsize(args.out)} bytes")
    print(f"sha256: {sha256_file(args.out)}")


if __name__ == "__main__":
    main()
