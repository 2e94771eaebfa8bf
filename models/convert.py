#!/usr/bin/env python3
"""Convert the MusiCNN TF1 checkpoints shipped by the PyPI wheel ``musicnn==0.1.0`` to ONNX.

Runs in its own throwaway environment (TensorFlow + tf2onnx), never in the sidecar's; see
``models/README.md``::

    python3.11 -m venv /tmp/convert-venv
    /tmp/convert-venv/bin/pip install -r models/requirements-convert.txt
    /tmp/convert-venv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/convert-venv/bin/python models/convert.py

It writes, relative to the repository root:

* ``models/msd_musicnn.onnx``, ``models/mtt_musicnn.onnx``: input ``mel`` float32 [N, 187, 96]
  (log-mel patches, dynamic N); outputs ``tags`` float32 [N, 50] (sigmoid scores) and
  ``embedding`` float32 [N, 200] (output of ``model/dense/BiasAdd``: the 200-unit dense layer of
  the back-end *before* its ReLU and batch-norm);
* ``models/SHA256SUMS``, ``models/labels.json``, ``models/LICENSE.musicnn``, ``models/MODEL_CARD.md``;
* ``tests/data/musicnn/clip.wav``: a deterministic synthetic 10 s clip (16 kHz mono, 16-bit PCM);
* ``tests/data/musicnn/reference.npz``: the clip's log-mel (musicnn preprocessing via librosa,
  log in float32), its 187-frame patches and, computed with TensorFlow from the original
  checkpoints, the per-patch tags and embeddings of both models.

Pitfalls handled here: the ``.meta`` graphs carry ``_output_shapes`` attributes that TF 2.x rejects
(deleted before ``import_meta_graph``); the ``checkpoint`` index file points at the author's home
directory (the checkpoint prefix is used directly); ``is_training`` is fed/frozen as ``False``;
musicnn's own float16 log overflows under numpy 2 (the log is computed in float32).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"
TEST_DATA_DIR = REPO / "tests" / "data" / "musicnn"

# Preprocessing, exactly as the seed (AudioMuse-AI) and musicnn's configuration.py
SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
N_FRAMES = 187  # librosa.time_to_frames(3 s, sr=16000, n_fft=512, hop_length=256) + 1
EMB_DIM = 200
N_TAGS = 50
OPSET = 17

# Graph names inside the TF1 checkpoints (found by inspecting the .meta graphs)
TF_INPUT = "model/Placeholder:0"  # float32 [?, 187, 96]
TF_LABELS = "model/Placeholder_1:0"  # float32 [?, 50], training targets: unused
TF_IS_TRAINING = "model/Placeholder_2:0"  # bool, unknown rank
TF_TAGS = "model/Sigmoid:0"  # sigmoid(model/dense_1/BiasAdd)
TF_EMBEDDING = "model/dense/BiasAdd:0"  # 200-d dense layer, before its ReLU and batch-norm

ONNX_INPUT = "mel"
ONNX_TAGS = "tags"
ONNX_EMBEDDING = "embedding"

MODELS = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}

CLIP_SECONDS = 10.0
CLIP_SEED = 20240603


# --------------------------------------------------------------------------------------------- audio


def synth_clip(seconds: float = CLIP_SECONDS, sr: int = SR, seed: int = CLIP_SEED) -> np.ndarray:
    """A deterministic, music-like clip: 120 BPM drums, bass and a four-chord pad."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    out = np.zeros(n, dtype=np.float64)
    beat = 0.5  # 120 BPM

    def midi_hz(m: float) -> float:
        return 440.0 * 2.0 ** ((m - 69) / 12.0)

    # chords (C, G, Am, F), one per bar (4 beats = 2 s), looping
    chords = [[60, 64, 67], [55, 59, 62], [57, 60, 64], [53, 57, 60]]
    bass = [36, 31, 33, 29]
    for i, start in enumerate(np.arange(0.0, seconds, 2.0)):
        s0 = int(start * sr)
        s1 = min(n, int((start + 2.0) * sr))
        tt = t[s0:s1] - start
        env = np.minimum(1.0, tt / 0.02) * np.exp(-tt * 0.8)
        chord = chords[i % len(chords)]
        for m in chord:
            f = midi_hz(m)
            for h in range(1, 7):  # saw-like additive harmonics
                out[s0:s1] += 0.08 / h * env * np.sin(2 * np.pi * f * h * tt + rng.uniform(0, 2 * np.pi))
        # bass on each beat
        for b in range(4):
            b0 = s0 + int(b * beat * sr)
            b1 = min(s1, b0 + int(beat * sr))
            if b0 >= n:
                break
            bt = t[b0:b1] - t[b0]
            fb = midi_hz(bass[i % len(bass)])
            benv = np.minimum(1.0, bt / 0.005) * np.exp(-bt * 5.0)
            out[b0:b1] += 0.35 * benv * (np.sin(2 * np.pi * fb * bt) + 0.3 * np.sin(4 * np.pi * fb * bt))

    # drums
    for k, start in enumerate(np.arange(0.0, seconds, beat / 2)):  # eighth notes
        s0 = int(start * sr)
        length = min(n - s0, int(0.25 * sr))
        if length <= 0:
            break
        tt = np.arange(length) / sr
        # hi-hat: differentiated white noise, very short
        hat = np.diff(rng.standard_normal(length + 1)) * np.exp(-tt * 60.0)
        out[s0 : s0 + length] += 0.05 * hat
        if k % 2 == 0:
            beat_idx = (k // 2) % 4
            if beat_idx in (0, 2):  # kick: falling sine sweep
                freq = 50.0 + 100.0 * np.exp(-tt * 30.0)
                phase = 2 * np.pi * np.cumsum(freq) / sr
                out[s0 : s0 + length] += 0.8 * np.sin(phase) * np.exp(-tt * 12.0)
            else:  # snare: noise + 180 Hz body
                noise = rng.standard_normal(length)
                out[s0 : s0 + length] += (0.25 * noise * np.exp(-tt * 25.0)) + 0.3 * np.sin(
                    2 * np.pi * 180.0 * tt
                ) * np.exp(-tt * 30.0)

    out /= np.max(np.abs(out))
    return (0.8 * out).astype(np.float32)


def log_mel_reference(audio: np.ndarray) -> np.ndarray:
    """musicnn's preprocessing with the seed's parameters, log in float32. Returns [frames, 96]."""
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=SR,
        n_fft=N_FFT,
        hop_length=HOP,
        n_mels=N_MELS,
        window="hann",
        center=False,
        power=2.0,
        norm="slaney",
        htk=False,
    ).T
    mel = mel.astype(np.float32)
    return np.log10(np.float32(1.0) + np.float32(10000.0) * mel).astype(np.float32)


def make_patches(logmel: np.ndarray) -> np.ndarray:
    """Non-overlapping 187-frame patches, partial tail dropped (musicnn's batch_data, overlap=n_frames)."""
    n = logmel.shape[0] // N_FRAMES
    return np.ascontiguousarray(logmel[: n * N_FRAMES].reshape(n, N_FRAMES, N_MELS))


# ---------------------------------------------------------------------------------------- tensorflow


def musicnn_dir() -> Path:
    import musicnn

    return Path(musicnn.__file__).resolve().parent


def load_meta_graph_def(ckpt_dir: Path):
    """The .meta graph with every node's ``_output_shapes`` deleted (TF 2.x cannot import them)."""
    from tensorflow.core.protobuf import meta_graph_pb2

    mg = meta_graph_pb2.MetaGraphDef()
    mg.ParseFromString((ckpt_dir / ".meta").read_bytes())
    for node in mg.graph_def.node:
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
    return mg


def checkpoint_prefix(ckpt_dir: Path) -> str:
    # The files are named ".index" / ".data-00000-of-00001", so the prefix is the directory + "/".
    # The "checkpoint" file next to them points at /home/jpons/...: never read it.
    return str(ckpt_dir) + "/"


def tf_reference(ckpt_dir: Path, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tags and embeddings from the original checkpoint, with TensorFlow (is_training=False)."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(load_meta_graph_def(ckpt_dir), clear_devices=True)
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, checkpoint_prefix(ckpt_dir))
            tags, emb = sess.run(
                [TF_TAGS, TF_EMBEDDING], feed_dict={TF_INPUT: patches, TF_IS_TRAINING: False}
            )
            # musicnn itself feeds one patch at a time: check batching does not change anything
            one_t, one_e = sess.run(
                [TF_TAGS, TF_EMBEDDING], feed_dict={TF_INPUT: patches[-1:], TF_IS_TRAINING: False}
            )
    assert np.allclose(one_t, tags[-1:], atol=1e-6) and np.allclose(one_e, emb[-1:], atol=1e-5)
    return tags.astype(np.float32), emb.astype(np.float32)


def frozen_graph_def(ckpt_dir: Path):
    """A frozen inference graph: input ``mel``, outputs ``tags`` and ``embedding``, is_training=False."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default():
        mel = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, N_MELS], name=ONNX_INPUT)
        is_training = tf.constant(False, dtype=tf.bool, name="is_training_false")
        saver = tf.compat.v1.train.import_meta_graph(
            load_meta_graph_def(ckpt_dir),
            clear_devices=True,
            input_map={TF_INPUT: mel, TF_IS_TRAINING: is_training},
        )
        tf.identity(graph.get_tensor_by_name(TF_TAGS), name=ONNX_TAGS)
        tf.identity(graph.get_tensor_by_name(TF_EMBEDDING), name=ONNX_EMBEDDING)
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, checkpoint_prefix(ckpt_dir))
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [ONNX_TAGS, ONNX_EMBEDDING]
            )
    return frozen


def make_tf2onnx_deterministic() -> None:
    """tf2onnx's transpose optimiser iterates over sets of ``Node`` objects, hashed by ``id()``, so
    the graph it produces varies from run to run (equivalent graphs, different bytes). Hash nodes
    by creation order instead, which is the same on every run (PYTHONHASHSEED is also fixed)."""
    import itertools

    from tf2onnx import graph as tfg

    if getattr(tfg.Node, "_audiomuse_deterministic", False):
        return
    counter = itertools.count()
    orig_init = tfg.Node.__init__

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.__dict__["_det_hash"] = next(counter)
        orig_init(self, *args, **kwargs)

    tfg.Node.__init__ = __init__
    tfg.Node.__hash__ = lambda self: self.__dict__.get("_det_hash", 0)
    tfg.Node._audiomuse_deterministic = True


def to_onnx(frozen, out_path: Path) -> None:
    import onnx
    import tf2onnx

    make_tf2onnx_deterministic()

    model_proto, _ = tf2onnx.convert.from_graph_def(
        frozen,
        input_names=[ONNX_INPUT + ":0"],
        output_names=[ONNX_TAGS + ":0", ONNX_EMBEDDING + ":0"],
        opset=OPSET,
    )
    # tf2onnx keeps TF tensor names ("mel:0"): give the graph plain names.
    rename = {
        ONNX_INPUT + ":0": ONNX_INPUT,
        ONNX_TAGS + ":0": ONNX_TAGS,
        ONNX_EMBEDDING + ":0": ONNX_EMBEDDING,
    }
    g = model_proto.graph
    for vi in list(g.input) + list(g.output):
        vi.name = rename.get(vi.name, vi.name)
    for node in g.node:
        node.input[:] = [rename.get(x, x) for x in node.input]
        node.output[:] = [rename.get(x, x) for x in node.output]
    # symbolic batch dimension name
    for vi in list(g.input) + list(g.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    model_proto.producer_name = "audiomuse-sidecar models/convert.py (tf2onnx)"
    model_proto.doc_string = (
        "MusiCNN (musicnn==0.1.0, ISC licence, MTG-UPF / Jordi Pons) converted to ONNX. "
        "Input mel[N,187,96] = log10(1+10000*mel) patches; outputs tags[N,50] (sigmoid), "
        "embedding[N,200] = model/dense/BiasAdd (before ReLU and batch-norm)."
    )
    canonicalise(model_proto)
    onnx.checker.check_model(model_proto)
    out_path.write_bytes(model_proto.SerializeToString())


def canonicalise(model_proto) -> None:
    """Make the serialised ONNX bytes independent of tf2onnx's run-to-run naming and ordering.

    tf2onnx names the nodes and constants it adds with process-dependent counters and shares equal
    constants differently from run to run, so the bytes (and the checksum, i.e. the model version)
    would change on every conversion. Here: initializers are deduplicated and named by content,
    nodes are sorted topologically (ties broken by a structural hash of the node and its inputs) and
    named by position; graph inputs and outputs keep their names.
    """
    from onnx import helper

    g = model_proto.graph
    io_names = {vi.name for vi in list(g.input) + list(g.output)}

    # 1. initializers: dedupe and name by content
    rename: dict[str, str] = {}
    inits: dict[str, object] = {}
    for init in g.initializer:
        # hash the tensor without its name: data_type, dims and data
        t = type(init)()
        t.CopyFrom(init)
        t.name = ""
        key = hashlib.sha256(t.SerializeToString(deterministic=True)).hexdigest()[:16]
        new = f"const_{key}"
        rename[init.name] = new
        if new not in inits:
            t.name = new
            inits[new] = t

    # 2. structural hash of every tensor, then a deterministic topological order
    producers = {out: node for node in g.node for out in node.output if out}
    sig: dict[str, str] = {name: name for name in io_names}
    sig.update({old: new for old, new in rename.items()})

    def attr_bytes(node) -> bytes:
        return b"".join(
            a.SerializeToString(deterministic=True) for a in sorted(node.attribute, key=lambda a: a.name)
        )

    node_sig: dict[int, str] = {}

    def tensor_sig(name: str) -> str:
        if not name:
            return ""
        if name in sig:
            return sig[name]
        node = producers[name]
        ns = node_signature(node)
        sig[name] = f"{ns}:{list(node.output).index(name)}"
        return sig[name]

    def node_signature(node) -> str:
        k = id(node)
        if k not in node_sig:
            h = hashlib.sha256()
            h.update(node.op_type.encode() + b"|" + node.domain.encode() + b"|" + attr_bytes(node))
            for x in node.input:
                h.update(b"|" + tensor_sig(x).encode())
            node_sig[k] = h.hexdigest()
        return node_sig[k]

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for node in g.node:
        node_signature(node)

    available = {vi.name for vi in g.input} | set(rename) | {""}
    remaining = list(g.node)
    ordered = []
    while remaining:
        ready = [n for n in remaining if all(x in available for x in n.input)]
        if not ready:
            raise RuntimeError("ONNX graph is not a DAG")
        ready.sort(key=lambda n: node_signature(n))
        first = ready[0]
        ordered.append(first)
        remaining.remove(first)
        available.update(first.output)

    # 3. rename nodes and intermediate tensors by position
    for i, node in enumerate(ordered):
        base = f"n{i:03d}_{node.op_type}"
        for j, out in enumerate(node.output):
            if out and out not in io_names:
                rename[out] = f"{base}:{j}"
        node.name = base
    new_nodes = []
    for node in ordered:
        n = helper.make_node(
            node.op_type,
            [rename.get(x, x) for x in node.input],
            [rename.get(x, x) for x in node.output],
            name=node.name,
            domain=node.domain or None,
        )
        n.attribute.extend(sorted(node.attribute, key=lambda a: a.name))
        new_nodes.append(n)
    del g.node[:]
    g.node.extend(new_nodes)
    del g.initializer[:]
    g.initializer.extend(inits[k] for k in sorted(inits))
    del g.value_info[:]  # intermediate shape annotations carry the old names


def onnx_run(path: Path, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tags, emb = sess.run([ONNX_TAGS, ONNX_EMBEDDING], {ONNX_INPUT: patches})
    return tags, emb


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ outputs


def model_card(labels: dict[str, list[str]], parity: dict, sums: dict[str, str], versions: dict) -> str:
    def tag_table(key: str) -> str:
        return "\n".join(f"| {i} | {name} |" for i, name in enumerate(labels[key]))

    def fmt(x: float) -> str:
        return f"{x:.2e}"

    rows = "\n".join(
        f"| {key} | {fmt(p['tags_max_abs_diff'])} | {fmt(p['embedding_max_abs_diff'])} | "
        f"{fmt(p['tags_max_abs_diff_random'])} | {fmt(p['embedding_max_abs_diff_random'])} |"
        for key, p in parity.items()
    )
    files = "\n".join(f"| `{name}` | {size} | `{digest}` |" for name, (size, digest) in sums.items())
    vers = ", ".join(f"{k} {v}" for k, v in versions.items())
    return f"""# Model card: MusiCNN (MSD and MTT) as ONNX

Generated by `models/convert.py`; do not edit by hand, re-run the script instead.

## Source

* Weights: the PyPI wheel `musicnn==0.1.0` (MTG, Universitat Pompeu Fabra; code by Jordi Pons),
  TF1 checkpoints `musicnn/MSD_musicnn/` (trained on the Million Song Dataset, 50 Last.fm tags) and
  `musicnn/MTT_musicnn/` (trained on MagnaTagATune, 50 tags). Paper: Pons & Serra, *musicnn:
  pre-trained convolutional neural networks for music audio tagging*, ISMIR 2019 LBD.
* Licence: ISC, notice kept in `models/LICENSE.musicnn`.
* Conversion: the `.meta` graph (with `_output_shapes` deleted from every node) is imported with
  `is_training` bound to the constant `False`, restored from the checkpoint prefix (the shipped
  `checkpoint` file points at the author's home directory and is ignored), frozen, and converted with
  tf2onnx (opset {OPSET}). Tool versions: {vers}.

## Files

| file | bytes | sha256 |
| --- | --- | --- |
{files}

`models/SHA256SUMS` holds the same digests; the runtime (`sidecar/ml/musicnn.py`) refuses to load a
model whose digest differs. `models/labels.json` holds both tag lists (`{{"msd": [...], "mtt": [...]}}`,
index = output column).

## Inputs and outputs (both models)

| name | kind | dtype | shape | meaning |
| --- | --- | --- | --- | --- |
| `mel` | input | float32 | `[batch, 187, 96]` | log-mel patches: 187 frames (about 3 s) x 96 mel bands |
| `tags` | output | float32 | `[batch, 50]` | sigmoid tag scores per patch (`model/Sigmoid`) |
| `embedding` | output | float32 | `[batch, 200]` | output of `model/dense/BiasAdd` |

`batch` is dynamic. Patches are independent (batch-norm uses its stored moving statistics).

**Embedding definition.** `embedding` is the output of the back-end's 200-unit dense layer
`model/dense/BiasAdd`, i.e. `W . batchnorm(concat(max_pool, mean_pool)) + b` (dropout is the identity
at inference), **before** its ReLU and the following batch-norm, as the seed project defines it. It is
*not* musicnn's `penultimate` feature (which is after ReLU and batch-norm). Values are unbounded
(roughly -10..10 on music). Track-level vectors are the mean over patches.

## Preprocessing (what the runtime must do before `mel`)

1. Decode to mono float32 at 16000 Hz.
2. Power mel spectrogram: `n_fft=512, hop_length=256, n_mels=96, window='hann', center=False,
   power=2.0, norm='slaney', htk=False` (librosa's `melspectrogram` / `filters.mel`, fmin=0,
   fmax=8000).
3. `log10(1 + 10000 * mel)` computed in **float32** (musicnn casts to float16 first, which overflows
   to inf under numpy 2 and then gives NaN).
4. Frames x bands (`[frames, 96]`), cut into non-overlapping 187-frame patches (hop 187 frames, as
   musicnn's `batch_data` with its default `input_overlap=False`); a partial tail is dropped, as
   musicnn does. A log-mel shorter than one patch (audio under about 3 s) is repeat-padded (frames
   tiled) to one patch by the sidecar runtime, as musicnn's training did for short clips
   (`"pad_short": "repeat-pad"` in the checkpoints' `config.json`).

Note: musicnn's own `batch_data` calls librosa with its defaults, i.e. `center=True` (zero padding
of 256 samples at each end). The seed and this project use `center=False`, whose frame `t` equals
`center=True`'s frame `t + 1`: patches start one frame (16 ms) later and no padded edge frame exists.

## Parity (ONNX Runtime vs TensorFlow on the original checkpoints)

Max absolute difference, on the 3 patches of the synthetic test clip `tests/data/musicnn/clip.wav`
(reference outputs in `tests/data/musicnn/reference.npz`) and on 8 random patches
(uniform in [0, 4]):

| model | tags (clip) | embedding (clip) | tags (random) | embedding (random) |
| --- | --- | --- | --- | --- |
{rows}

The test suite (`tests/test_ml_musicnn.py`) requires <= 1e-4 on tags and embeddings.

## Cost

About 1.4 G multiply-adds per patch, 80% of them in the two timbral convolutions (7x38 and 7x67
kernels, 204 filters each). ONNX Runtime on the 2-core target machine (AMD EPYC, 2 intra-op
threads): about 19 ms per patch per model, at batch size 1 as at 8 (compute-bound); a 4-minute
track has 80 patches.

## Regenerate

See `models/README.md`.

## Tags

### MSD_musicnn (`msd`)

| index | tag |
| --- | --- |
{tag_table("msd")}

### MTT_musicnn (`mtt`)

| index | tag |
| --- | --- |
{tag_table("mtt")}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--test-data-dir", type=Path, default=TEST_DATA_DIR)
    args = ap.parse_args(argv)
    models_dir: Path = args.models_dir
    data_dir: Path = args.test_data_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)

    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx
    from musicnn import configuration as mcfg

    src = musicnn_dir()
    labels = {"msd": list(mcfg.MSD_LABELS), "mtt": list(mcfg.MTT_LABELS)}
    assert all(len(v) == N_TAGS for v in labels.values())
    assert (mcfg.SR, mcfg.FFT_HOP, mcfg.FFT_SIZE, mcfg.N_MELS) == (SR, HOP, N_FFT, N_MELS)
    assert librosa.time_to_frames(3, sr=SR, n_fft=N_FFT, hop_length=HOP) + 1 == N_FRAMES

    # 1. test clip (written as 16-bit PCM, then read back so the references match the file exactly)
    clip_path = data_dir / "clip.wav"
    sf.write(clip_path, synth_clip(), SR, subtype="PCM_16")
    audio, sr = sf.read(clip_path, dtype="float32")
    assert sr == SR and audio.ndim == 1
    logmel = log_mel_reference(audio)
    patches = make_patches(logmel)
    print(f"clip: {audio.shape[0]} samples, log-mel {logmel.shape}, patches {patches.shape}")

    rng = np.random.default_rng(7)
    random_patches = rng.uniform(0.0, 4.0, size=(8, N_FRAMES, N_MELS)).astype(np.float32)

    ref: dict[str, np.ndarray] = {
        "logmel": logmel,
        "patches": patches,
        "audio_samples": np.array(audio.shape[0]),
        "sr": np.array(SR),
    }
    parity: dict[str, dict[str, float]] = {}
    sums: dict[str, tuple[int, str]] = {}
    for key, ckpt_name in MODELS.items():
        ckpt_dir = src / ckpt_name
        t0 = time.time()
        tags, emb = tf_reference(ckpt_dir, patches)
        rtags, remb = tf_reference(ckpt_dir, random_patches)
        assert tags.shape == (patches.shape[0], N_TAGS) and emb.shape == (patches.shape[0], EMB_DIM)
        assert np.isfinite(tags).all() and np.isfinite(emb).all()
        ref[f"{key}_tags"] = tags
        ref[f"{key}_embedding"] = emb

        out = models_dir / f"{key}_musicnn.onnx"
        to_onnx(frozen_graph_def(ckpt_dir), out)
        otags, oemb = onnx_run(out, patches)
        ortags, oremb = onnx_run(out, random_patches)
        parity[key] = {
            "tags_max_abs_diff": float(np.max(np.abs(otags - tags))),
            "embedding_max_abs_diff": float(np.max(np.abs(oemb - emb))),
            "tags_max_abs_diff_random": float(np.max(np.abs(ortags - rtags))),
            "embedding_max_abs_diff_random": float(np.max(np.abs(oremb - remb))),
        }
        sums[out.name] = (out.stat().st_size, sha256(out))
        print(
            f"{key}: {out.name} {out.stat().st_size} bytes, parity {parity[key]} ({time.time() - t0:.1f} s)"
        )
        if max(parity[key].values()) > 1e-4:
            print(f"ERROR: {key} ONNX output differs from TensorFlow by more than 1e-4", file=sys.stderr)
            return 1

    np.savez_compressed(data_dir / "reference.npz", **ref)
    (models_dir / "SHA256SUMS").write_text(
        "".join(f"{digest}  {name}\n" for name, (_, digest) in sorted(sums.items()))
    )
    (models_dir / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    lic = Path(src.parent / "musicnn-0.1.0.dist-info" / "LICENSE.md")
    shutil.copyfile(lic, models_dir / "LICENSE.musicnn")
    versions = {
        "musicnn": "0.1.0",
        "tensorflow": tf.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "librosa": librosa.__version__,
        "numpy": np.__version__,
    }
    (models_dir / "MODEL_CARD.md").write_text(model_card(labels, parity, sums, versions))
    print(f"wrote {models_dir} and {data_dir}")
    return 0


if __name__ == "__main__":
    # tf2onnx's graph optimisers iterate over sets of names: fix str hashing so that the ONNX bytes,
    # hence their checksums (the model version), are the same on every run.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    raise SystemExit(main())
