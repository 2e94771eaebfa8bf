"""MusiCNN taggers (MSD and MTT) on ONNX Runtime: per-patch tags and 200-d embeddings.

The ONNX graphs, their checksums, tag lists and model card live in ``models/`` (see
``models/MODEL_CARD.md``; ``models/convert.py`` regenerates them from the ``musicnn==0.1.0``
checkpoints). Each model is loaded once per process (cached) after its sha256 has been checked
against ``models/SHA256SUMS``.

Typical use::

    from sidecar.ml import mel, musicnn
    logmel = mel.log_mel(audio_16k_mono_float32)          # [frames, 96]
    msd = musicnn.MusicnnModel.load(name="msd")
    out = msd.predict_logmel(logmel)                      # MusicnnOutput
    out.mean_embedding, out.mean_tags, out.top_tags(5)
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sidecar.ml import mel as _mel

INPUT_NAME = "mel"
TAGS_NAME = "tags"
EMBEDDING_NAME = "embedding"
N_TAGS = 50
EMBEDDING_DIM = 200
MODEL_NAMES = ("msd", "mtt")
# Patches per ONNX Runtime call. Measured on the 2-core target (2 intra-op threads): ~19 ms/patch at
# batch 1, 4 or 8 alike (the two timbral convolutions are compute-bound), but ORT's memory arena grows
# with the batch (both models loaded: ~160 MB peak RSS at batch 1, ~420 MB at 4, ~750 MB at 8).
DEFAULT_BATCH_SIZE = 1


class ModelFileError(RuntimeError):
    """A model file is missing, unlisted in SHA256SUMS, or does not match its checksum."""


def default_model_dir() -> Path:
    """``sidecar/models``: in the repository a link to ``<repo>/models``, in an installed wheel a
    copy of the model files (package data), so a non-editable install analyses out of the box."""
    return Path(__file__).resolve().parents[1] / "models"


def default_threads() -> int:
    """Intra-op threads for ONNX Runtime: the CPU count, at most 4 (the model is small)."""
    return max(1, min(4, os.cpu_count() or 1))


def _normalise_name(name: str) -> str:
    key = name.lower().removesuffix("_musicnn").removesuffix(".onnx")
    if key not in MODEL_NAMES:
        raise ValueError(f"unknown MusiCNN model {name!r}; expected one of {MODEL_NAMES}")
    return key


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checksums(model_dir: Path) -> dict[str, str]:
    """``{file name: sha256}`` from ``model_dir/SHA256SUMS`` (``sha256sum`` format)."""
    sums_path = model_dir / "SHA256SUMS"
    try:
        text = sums_path.read_text()
    except FileNotFoundError:
        raise ModelFileError(f"missing checksum file {sums_path}") from None
    sums: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, fname = line.partition(" ")
        sums[fname.strip().lstrip("*")] = digest.lower()
    return sums


def verify_model_file(path: Path, model_dir: Path | None = None) -> str:
    """Check ``path`` against SHA256SUMS in ``model_dir`` (default: its directory); return its sha256."""
    model_dir = path.parent if model_dir is None else model_dir
    if not path.is_file():
        raise ModelFileError(
            f"missing model file {path}; regenerate it with models/convert.py (see models/README.md)"
        )
    expected = read_checksums(model_dir).get(path.name)
    if expected is None:
        raise ModelFileError(f"{path.name} is not listed in {model_dir / 'SHA256SUMS'}")
    actual = _sha256(path)
    if actual != expected:
        raise ModelFileError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}; the file is "
            "corrupt or was replaced: restore it from git or regenerate it with models/convert.py"
        )
    return actual


def load_labels(model_dir: Path, name: str) -> tuple[str, ...]:
    path = model_dir / "labels.json"
    try:
        labels = json.loads(path.read_text())[name]
    except FileNotFoundError:
        raise ModelFileError(f"missing tag list {path}") from None
    except (KeyError, ValueError) as exc:
        raise ModelFileError(f"{path} has no valid {name!r} tag list: {exc}") from None
    if len(labels) != N_TAGS:
        raise ModelFileError(f"{path}: {name!r} has {len(labels)} tags, expected {N_TAGS}")
    return tuple(str(x) for x in labels)


@dataclass(frozen=True)
class MusicnnOutput:
    """Per-patch outputs of one model for one track."""

    tags: np.ndarray  # [N, 50] float32 sigmoid scores
    embeddings: np.ndarray  # [N, 200] float32, model/dense/BiasAdd
    labels: tuple[str, ...]

    @property
    def n_patches(self) -> int:
        return int(self.tags.shape[0])

    @property
    def mean_tags(self) -> np.ndarray:
        """Track-level tag scores: mean over patches, float32 [50]."""
        return np.asarray(self.tags.mean(axis=0, dtype=np.float64), dtype=np.float32)

    @property
    def mean_embedding(self) -> np.ndarray:
        """Track-level embedding: mean over patches, float32 [200]."""
        return np.asarray(self.embeddings.mean(axis=0, dtype=np.float64), dtype=np.float32)

    def tag_scores(self) -> dict[str, float]:
        """``{tag: mean score}`` for all 50 tags."""
        return {label: float(v) for label, v in zip(self.labels, self.mean_tags, strict=True)}

    def top_tags(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` highest mean tag scores, best first."""
        scores = self.mean_tags
        order = np.argsort(-scores, kind="stable")[: max(0, n)]
        return [(self.labels[i], float(scores[i])) for i in order]


@dataclass(eq=False)
class MusicnnModel:
    """One MusiCNN ONNX model (``msd`` or ``mtt``). Use :meth:`load`, which caches per process."""

    name: str
    path: Path
    sha256: str
    labels: tuple[str, ...]
    threads: int
    _session: Any = field(repr=False)

    _cache: ClassVar[dict[tuple[Path, str, int], MusicnnModel]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @property
    def version(self) -> str:
        """Identifies the weights: ``msd_musicnn@<first 12 hex digits of the ONNX sha256>``."""
        return f"{self.name}_musicnn@{self.sha256[:12]}"

    @classmethod
    def load(
        cls, model_dir: Path | str | None = None, name: str = "msd", threads: int | None = None
    ) -> MusicnnModel:
        """Load (once per process) ``<model_dir>/<name>_musicnn.onnx`` after checking its sha256.

        Raises :class:`ModelFileError` when the file, its checksum line or its tag list is missing,
        or when the checksum does not match.
        """
        key_name = _normalise_name(name)
        mdir = (Path(model_dir) if model_dir is not None else default_model_dir()).resolve()
        n_threads = default_threads() if threads is None else max(1, int(threads))
        key = (mdir, key_name, n_threads)
        with cls._lock:
            cached = cls._cache.get(key)
            if cached is not None:
                return cached
            path = mdir / f"{key_name}_musicnn.onnx"
            digest = verify_model_file(path, mdir)
            labels = load_labels(mdir, key_name)
            session = _make_session(path, n_threads)
            model = cls(key_name, path, digest, labels, n_threads, session)
            cls._cache[key] = model
            return model

    @classmethod
    def clear_cache(cls) -> None:
        with cls._lock:
            cls._cache.clear()

    def predict_patches(
        self, patches: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on ``[N, 187, 96]`` log-mel patches -> ``(tags [N, 50], embeddings [N, 200])``."""
        x = np.asarray(patches, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (_mel.PATCH_FRAMES, _mel.N_MELS):
            raise ValueError(f"patches must be [N, {_mel.PATCH_FRAMES}, {_mel.N_MELS}], got {x.shape}")
        n = x.shape[0]
        tags = np.empty((n, N_TAGS), dtype=np.float32)
        emb = np.empty((n, EMBEDDING_DIM), dtype=np.float32)
        step = max(1, int(batch_size))
        for start in range(0, n, step):
            chunk = np.ascontiguousarray(x[start : start + step])
            t, e = self._session.run([TAGS_NAME, EMBEDDING_NAME], {INPUT_NAME: chunk})
            tags[start : start + step] = t
            emb[start : start + step] = e
        return tags, emb

    def predict_logmel(self, logmel: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> MusicnnOutput:
        """Patches (see :func:`sidecar.ml.mel.patches`) of a ``[frames, 96]`` log-mel -> outputs."""
        tags, emb = self.predict_patches(_mel.patches(logmel), batch_size=batch_size)
        return MusicnnOutput(tags=tags, embeddings=emb, labels=self.labels)

    def predict_audio(self, audio: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> MusicnnOutput:
        """16 kHz mono float32 audio -> outputs (computes the log-mel; prefer :func:`analyze` for both models)."""
        return self.predict_logmel(_mel.log_mel(audio), batch_size=batch_size)


def analyze(
    audio: np.ndarray,
    model_dir: Path | str | None = None,
    names: tuple[str, ...] = MODEL_NAMES,
    threads: int | None = None,
) -> dict[str, MusicnnOutput]:
    """Both taggers on 16 kHz mono float32 audio, sharing one log-mel: ``{"msd": ..., "mtt": ...}``."""
    p = _mel.patches(_mel.log_mel(audio))
    out: dict[str, MusicnnOutput] = {}
    for name in names:
        model = MusicnnModel.load(model_dir, name, threads)
        tags, emb = model.predict_patches(p)
        out[model.name] = MusicnnOutput(tags=tags, embeddings=emb, labels=model.labels)
    return out


def _make_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # don't busy-wait between runs: decoding and the mel frontend share the same cores
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelFileError(f"cannot load ONNX model {path}: {exc}") from exc
