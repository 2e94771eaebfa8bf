"""The model version this installation analyses with, read from the model files' checksum list
(no model is loaded: the web processes never load ONNX Runtime for an import)."""

from __future__ import annotations

from pathlib import Path


def installed_model_version(model_dir: Path | None) -> str | None:
    """What :func:`sidecar.ml.pipeline.model_version` answers once the models are loaded (a test
    holds the two equal), or None when the checksum list cannot be read."""
    from sidecar.ml.musicnn import ModelFileError, default_model_dir, read_checksums
    from sidecar.ml.pipeline import PIPELINE_REVISION

    try:
        sums = read_checksums((model_dir or default_model_dir()).resolve())
    except ModelFileError:
        return None
    msd, mtt = sums.get("msd_musicnn.onnx"), sums.get("mtt_musicnn.onnx")
    if not msd or not mtt:
        return None
    return f"musicnn-msd_musicnn@{msd[:12]}+mtt_musicnn@{mtt[:12]}/p{PIPELINE_REVISION}"
