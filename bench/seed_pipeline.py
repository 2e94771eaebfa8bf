"""The seed's (AudioMuse-AI's) analysis of one track, as the reference bench/analysis.py compares against.

Runs in the seed's environment (TensorFlow + the ``musicnn==0.1.0`` checkpoints + librosa, made from
models/requirements-convert.txt), never in the sidecar's. bench/analysis.py starts it once as a
subprocess and talks to it in JSON lines:

    python bench/seed_pipeline.py --warmup CLIP.wav

* it loads TensorFlow and the MSD_musicnn checkpoint once, analyses ``CLIP`` once (librosa's numba
  code and TensorFlow's first run compile there), then prints
  ``{"ready": true, "load_s": ..., "warmup_s": ..., "versions": {...}}``;
* then for every audio path read on stdin (one per line) it prints one line
  ``{"path", "seconds", "patches", "timings": {decode_s, mel_s, model_s, tempo_s, key_s},
  "total_s", "embedding": [200 floats], "tempo", "key", "scale"}`` (or ``{"path", "error"}``);
* it exits at the end of stdin.

The pipeline, stage by stage (the one-time loads above are not part of it):

decode   ``librosa.load(path, sr=16000, mono=True)``
mel      musicnn's ``batch_data``: ``librosa.feature.melspectrogram(y, sr=16000, hop_length=256,
         n_fft=512, n_mels=96).T`` (librosa's other defaults, so ``center=True``), then
         ``log10(10000 * mel + 1)``, in float32 (musicnn casts to float16 first, which overflows to
         inf under numpy 2), cut into 187-frame patches with hop 187
model    TensorFlow on the original MSD_musicnn checkpoint, every patch: the taggram
         (``model/Sigmoid``) and the embedding (``model/dense/BiasAdd``), averaged over patches; the
         graph is restored as models/convert.py does (``_output_shapes`` deleted, the checkpoint
         prefix read directly, ``is_training`` fed False); patches go in batches of 64 (the default
         of Essentia's ``TensorflowPredictMusiCNN``; musicnn's own extractor feeds one at a time)
tempo    ``librosa.beat.beat_track(y=y, sr=16000)``
key      ``librosa.feature.chroma_stft(y=y, sr=16000)`` averaged over frames, correlated with the 24
         rotations of the Krumhansl-Kessler major and minor profiles
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# The JSON lines go to the original stdout; anything a library prints goes to stderr.
PROTOCOL = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

import librosa  # noqa: E402
import numpy as np  # noqa: E402

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187
BATCH = 64

TF_INPUT = "model/Placeholder:0"
TF_IS_TRAINING = "model/Placeholder_2:0"
TF_TAGS = "model/Sigmoid:0"
TF_EMBEDDING = "model/dense/BiasAdd:0"

KEYS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
KRUMHANSL_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KRUMHANSL_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


class MusicnnTF:
    """The MSD_musicnn checkpoint in a TensorFlow 1 session (loaded once per process)."""

    def __init__(self, checkpoint_dir: Path) -> None:
        import tensorflow as tf
        from tensorflow.core.protobuf import meta_graph_pb2

        tf.compat.v1.disable_eager_execution()
        meta = meta_graph_pb2.MetaGraphDef()
        meta.ParseFromString((checkpoint_dir / ".meta").read_bytes())
        for node in meta.graph_def.node:  # TF 2.x rejects the shapes recorded by TF 1
            if "_output_shapes" in node.attr:
                del node.attr["_output_shapes"]
        graph = tf.Graph()
        with graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        self.session = tf.compat.v1.Session(graph=graph)
        # the "checkpoint" file names its author's home directory: use the prefix itself
        saver.restore(self.session, str(checkpoint_dir) + "/")

    def predict(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[N, 187, 96]`` patches -> (tags ``[N, 50]``, embeddings ``[N, 200]``)."""
        tags, embeddings = [], []
        for start in range(0, patches.shape[0], BATCH):
            t, e = self.session.run(
                [TF_TAGS, TF_EMBEDDING],
                feed_dict={TF_INPUT: patches[start : start + BATCH], TF_IS_TRAINING: False},
            )
            tags.append(t)
            embeddings.append(e)
        return np.concatenate(tags), np.concatenate(embeddings)


def log_mel_patches(y: np.ndarray) -> np.ndarray:
    """musicnn's ``batch_data`` with the log in float32: non-overlapping 187-frame patches."""
    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T
    logmel = np.log10(np.float32(10000) * mel.astype(np.float32) + np.float32(1))
    n = logmel.shape[0] // PATCH_FRAMES
    if n == 0:
        raise ValueError("shorter than one 3-second patch")
    return logmel[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS)


def estimate_key(y: np.ndarray) -> tuple[str, str]:
    """Krumhansl-Schmuckler on the mean chroma: the best correlated of the 24 rotated profiles."""
    chroma = librosa.feature.chroma_stft(y=y, sr=SR).mean(axis=1)
    best = max(
        (
            (np.corrcoef(chroma, np.roll(profile, tonic))[0, 1], KEYS[tonic], scale)
            for scale, profile in (("major", KRUMHANSL_MAJOR), ("minor", KRUMHANSL_MINOR))
            for tonic in range(12)
        ),
        key=lambda c: c[0],
    )
    return best[1], best[2]


def analyze(path: str, model: MusicnnTF) -> dict:
    timings: dict[str, float] = {}
    start = t0 = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[stage] = now - t0
        t0 = now

    y, _ = librosa.load(path, sr=SR, mono=True)
    lap("decode_s")
    patches = log_mel_patches(y)
    lap("mel_s")
    _tags, embeddings = model.predict(patches)
    embedding = embeddings.mean(axis=0, dtype=np.float64).astype(np.float32)
    lap("model_s")
    tempo, _beats = librosa.beat.beat_track(y=y, sr=SR)
    lap("tempo_s")
    key, scale = estimate_key(y)
    lap("key_s")
    return {
        "path": path,
        "seconds": y.shape[0] / SR,
        "patches": int(patches.shape[0]),
        "timings": timings,
        "total_s": time.perf_counter() - start,
        "embedding": embedding.tolist(),
        "tempo": float(np.atleast_1d(tempo)[0]),
        "key": key,
        "scale": scale,
    }


def emit(message: dict) -> None:
    PROTOCOL.write(json.dumps(message) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description="The seed's analysis pipeline, driven by bench/analysis.py.")
    ap.add_argument("--warmup", required=True, help="a short audio file analysed once before reporting ready")
    args = ap.parse_args()

    import musicnn
    import tensorflow as tf

    t0 = time.perf_counter()
    model = MusicnnTF(Path(musicnn.__file__).resolve().parent / "MSD_musicnn")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    analyze(args.warmup, model)
    warmup_s = time.perf_counter() - t0
    emit(
        {
            "ready": True,
            "load_s": load_s,
            "warmup_s": warmup_s,
            "versions": {
                "tensorflow": tf.__version__,
                "librosa": librosa.__version__,
                "numpy": np.__version__,
            },
        }
    )
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        try:
            emit(analyze(path, model))
        except Exception as exc:  # reported to the driver, which fails loudly
            emit({"path": path, "error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
