"""MusiCNN on ONNX Runtime: parity with the TensorFlow reference outputs, mel frontend, model files.

The reference outputs (``tests/data/musicnn/reference.npz``) were computed by ``models/convert.py``
with TensorFlow from the original ``musicnn==0.1.0`` checkpoints, on the synthetic clip
``tests/data/musicnn/clip.wav``.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sidecar.ml import mel, musicnn

DATA = Path(__file__).parent / "data" / "musicnn"
MODELS = Path(__file__).resolve().parents[1] / "models"
TOL = 1e-4


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(DATA / "reference.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    audio, sr = sf.read(DATA / "clip.wav", dtype="float32")
    assert sr == mel.SAMPLE_RATE and audio.ndim == 1
    return audio


# ------------------------------------------------------------------------------------------ models


def test_default_model_dir_is_repo_models_shipped_in_the_package() -> None:
    # sidecar/models links to <repo>/models; a wheel holds the files themselves (package data)
    default = musicnn.default_model_dir()
    assert default == Path(musicnn.__file__).resolve().parents[1] / "models"
    assert default.resolve() == MODELS and (MODELS / "SHA256SUMS").is_file()
    pyproject = tomllib.loads((MODELS.parent / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["sidecar"]
    needed = [line.split()[1] for line in (MODELS / "SHA256SUMS").read_text().splitlines()]
    needed += ["SHA256SUMS", "labels.json", "LICENSE.musicnn"]
    for name in needed:
        assert any(fnmatch.fnmatch(f"models/{name}", pattern) for pattern in shipped), name


@pytest.mark.parametrize("name", ["msd", "mtt"])
def test_onnx_matches_tensorflow_reference(name: str, ref: dict[str, np.ndarray]) -> None:
    model = musicnn.MusicnnModel.load(name=name)
    tags, emb = model.predict_patches(ref["patches"])
    assert tags.shape == (3, 50) and emb.shape == (3, 200)
    assert tags.dtype == np.float32 and emb.dtype == np.float32
    assert np.max(np.abs(tags - ref[f"{name}_tags"])) <= TOL
    assert np.max(np.abs(emb - ref[f"{name}_embedding"])) <= TOL


@pytest.mark.parametrize("name", ["msd", "mtt"])
def test_end_to_end_clip_matches_reference(name: str, clip: np.ndarray, ref: dict[str, np.ndarray]) -> None:
    """Our numpy frontend + ONNX against librosa + TensorFlow, on the same audio."""
    out = musicnn.analyze(clip, names=(name,))[name]
    assert out.n_patches == 3
    assert np.max(np.abs(out.tags - ref[f"{name}_tags"])) <= TOL
    assert np.max(np.abs(out.embeddings - ref[f"{name}_embedding"])) <= TOL
    np.testing.assert_allclose(out.mean_embedding, ref[f"{name}_embedding"].mean(axis=0), atol=TOL)
    np.testing.assert_allclose(out.mean_tags, ref[f"{name}_tags"].mean(axis=0), atol=TOL)


def test_batching_does_not_change_outputs(ref: dict[str, np.ndarray]) -> None:
    model = musicnn.MusicnnModel.load(name="msd")
    one_t, one_e = model.predict_patches(ref["patches"], batch_size=1)
    all_t, all_e = model.predict_patches(ref["patches"], batch_size=8)
    np.testing.assert_allclose(one_t, all_t, atol=1e-5)
    np.testing.assert_allclose(one_e, all_e, atol=1e-4)
    t0, e0 = model.predict_patches(np.zeros((0, 187, 96), np.float32))
    assert t0.shape == (0, 50) and e0.shape == (0, 200)


def test_model_loaded_once_per_process() -> None:
    a = musicnn.MusicnnModel.load(name="msd")
    assert musicnn.MusicnnModel.load(MODELS, "MSD_musicnn") is a
    assert musicnn.MusicnnModel.load(name="mtt") is not a
    assert a.version.startswith("msd_musicnn@") and len(a.sha256) == 64
    with pytest.raises(ValueError, match="unknown MusiCNN model"):
        musicnn.MusicnnModel.load(name="vgg")


def test_labels_and_top_tags(ref: dict[str, np.ndarray]) -> None:
    labels = json.loads((MODELS / "labels.json").read_text())
    assert len(labels["msd"]) == 50 and len(labels["mtt"]) == 50
    assert labels["msd"][:3] == ["rock", "pop", "alternative"] and labels["msd"][-1] == "happy"
    assert labels["mtt"][:4] == ["guitar", "classical", "slow", "techno"]
    model = musicnn.MusicnnModel.load(name="mtt")
    assert model.labels == tuple(labels["mtt"])
    out = model.predict_logmel(ref["logmel"])
    top = out.top_tags(3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    assert top[0][0] == labels["mtt"][int(np.argmax(ref["mtt_tags"].mean(axis=0)))]
    assert set(out.tag_scores()) == set(labels["mtt"])


def test_wrong_patch_shape_is_rejected() -> None:
    model = musicnn.MusicnnModel.load(name="msd")
    with pytest.raises(ValueError, match="patches must be"):
        model.predict_patches(np.zeros((2, 100, 96), np.float32))


# -------------------------------------------------------------------------------------- model files


def _copy_models(dst: Path) -> Path:
    dst.mkdir()
    for f in ("msd_musicnn.onnx", "SHA256SUMS", "labels.json"):
        shutil.copyfile(MODELS / f, dst / f)
    return dst


def test_checksum_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    mdir = _copy_models(tmp_path / "models")
    data = bytearray((mdir / "msd_musicnn.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (mdir / "msd_musicnn.onnx").write_bytes(bytes(data))
    with pytest.raises(musicnn.ModelFileError, match=r"checksum mismatch for .*msd_musicnn\.onnx"):
        musicnn.MusicnnModel.load(mdir, "msd")


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    mdir = _copy_models(tmp_path / "models")
    with pytest.raises(musicnn.ModelFileError, match=r"missing model file .*mtt_musicnn\.onnx"):
        musicnn.MusicnnModel.load(mdir, "mtt")
    (mdir / "SHA256SUMS").unlink()
    with pytest.raises(musicnn.ModelFileError, match="missing checksum file"):
        musicnn.MusicnnModel.load(mdir, "msd")


def test_model_not_listed_in_checksums(tmp_path: Path) -> None:
    mdir = _copy_models(tmp_path / "models")
    (mdir / "SHA256SUMS").write_text("")
    with pytest.raises(musicnn.ModelFileError, match="not listed"):
        musicnn.MusicnnModel.load(mdir, "msd")


def test_copied_model_dir_loads(tmp_path: Path, ref: dict[str, np.ndarray]) -> None:
    mdir = _copy_models(tmp_path / "models")
    model = musicnn.MusicnnModel.load(mdir, "msd", threads=1)
    assert model.path == mdir.resolve() / "msd_musicnn.onnx"
    tags, _ = model.predict_patches(ref["patches"][:1])
    assert np.max(np.abs(tags - ref["msd_tags"][:1])) <= TOL


# ------------------------------------------------------------------------------------- mel frontend


def test_mel_frontend_matches_reference(clip: np.ndarray, ref: dict[str, np.ndarray]) -> None:
    logmel = mel.log_mel(clip)
    assert logmel.dtype == np.float32
    assert logmel.shape == ref["logmel"].shape == (624, 96)
    assert np.max(np.abs(logmel - ref["logmel"])) <= 1e-5
    p = mel.patches(logmel)
    assert p.shape == ref["patches"].shape == (3, 187, 96)
    assert np.max(np.abs(p - ref["patches"])) <= 1e-5


@pytest.mark.parametrize("n_samples", [512, 513, 16000, 16000 * 3 + 77, 100_000])
def test_mel_matches_librosa(n_samples: int) -> None:
    import librosa

    rng = np.random.default_rng(n_samples)
    y = (0.3 * rng.standard_normal(n_samples)).astype(np.float32)
    expected = librosa.feature.melspectrogram(
        y=y,
        sr=16000,
        n_fft=512,
        hop_length=256,
        n_mels=96,
        window="hann",
        center=False,
        power=2.0,
        norm="slaney",
        htk=False,
    ).T.astype(np.float32)
    got = mel.mel_power(y)
    assert got.shape == expected.shape == (mel.n_frames(n_samples), 96)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * float(expected.max()))
    np.testing.assert_allclose(
        mel.log_mel(y), np.log10(np.float32(1) + np.float32(10000) * expected), atol=1e-5
    )


def test_mel_parameters() -> None:
    assert (mel.SAMPLE_RATE, mel.N_FFT, mel.HOP_LENGTH, mel.N_MELS, mel.PATCH_FRAMES) == (
        16000,
        512,
        256,
        96,
        187,
    )
    fb = mel.mel_filterbank()
    assert fb.shape == (96, 257) and fb.dtype == np.float32
    assert mel.n_frames(511) == 0 and mel.n_frames(512) == 1 and mel.n_frames(767) == 1
    assert mel.n_frames(768) == 2


def test_log_is_float32_and_finite_on_loud_input() -> None:
    # musicnn's float16 log overflows to inf (then NaN) on loud input under numpy 2
    y = np.sign(np.sin(np.arange(16000 * 4) * 0.3)).astype(np.float32)  # full-scale square wave
    logmel = mel.log_mel(y)
    assert logmel.dtype == np.float32 and np.isfinite(logmel).all()
    assert float(logmel.max()) > np.log10(65504.0)  # beyond float16 range before the log


def test_silence_gives_zero_logmel_and_finite_outputs() -> None:
    logmel = mel.log_mel(np.zeros(16000 * 4, np.float32))
    assert np.all(logmel == 0)
    out = musicnn.MusicnnModel.load(name="msd").predict_logmel(logmel)
    assert np.isfinite(out.tags).all() and np.isfinite(out.embeddings).all()


# ---------------------------------------------------------------------------------------- patching


def test_tail_shorter_than_a_patch_is_dropped() -> None:
    logmel = np.arange(400 * 96, dtype=np.float32).reshape(400, 96)
    p = mel.patches(logmel)
    assert p.shape == (2, 187, 96)
    np.testing.assert_array_equal(p[1], logmel[187:374])
    assert mel.patches(logmel[:187]).shape == (1, 187, 96)
    assert mel.patches(logmel[:374]).shape == (2, 187, 96)


def test_short_clip_is_repeat_padded_to_one_patch(clip: np.ndarray) -> None:
    short = clip[:16000]  # 1 s: 61 frames, less than one 187-frame patch
    logmel = mel.log_mel(short)
    assert logmel.shape == (61, 96)
    p = mel.patches(logmel)
    assert p.shape == (1, 187, 96)
    np.testing.assert_array_equal(p[0, :61], logmel)
    np.testing.assert_array_equal(p[0, 61:122], logmel)
    np.testing.assert_array_equal(p[0, 122:183], logmel)
    np.testing.assert_array_equal(p[0, 183:], logmel[:4])
    res = musicnn.analyze(short)
    for name in ("msd", "mtt"):
        out = res[name]
        assert out.n_patches == 1
        assert out.mean_tags.shape == (50,) and out.mean_embedding.shape == (200,)
        assert np.isfinite(out.tags).all() and np.isfinite(out.embeddings).all()
        assert np.all((out.tags >= 0) & (out.tags <= 1))


def test_one_frame_clip_and_too_short_clip() -> None:
    one = mel.log_mel(np.full(600, 0.1, np.float32))
    assert one.shape == (1, 96)
    assert mel.patches(one).shape == (1, 187, 96)
    empty = mel.log_mel(np.zeros(100, np.float32))
    assert empty.shape == (0, 96)
    with pytest.raises(ValueError, match="too short"):
        mel.patches(empty)
    with pytest.raises(ValueError, match="too short"):
        musicnn.analyze(np.zeros(100, np.float32))


def test_non_mono_audio_is_rejected() -> None:
    with pytest.raises(ValueError, match="mono"):
        mel.log_mel(np.zeros((2, 16000), np.float32))
