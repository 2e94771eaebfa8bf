"""The seed's pipeline as bench/analysis.py runs it: its Python environment (TensorFlow, made once
from models/requirements-convert.txt and cached) and a client for bench/seed_pipeline.py, which
runs in that environment as one long-lived subprocess (TensorFlow and the checkpoint load once)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

BENCH = Path(__file__).resolve().parent
REQUIREMENTS = BENCH.parent / "models" / "requirements-convert.txt"
MUSICNN = "musicnn==0.1.0"  # installed with --no-deps: its own pins (numpy<1.17, tf<2) are ancient
SEED_SCRIPT = BENCH / "seed_pipeline.py"


def _venv_fingerprint() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes() + MUSICNN.encode()).hexdigest()


def _python_for_tensorflow() -> str:
    """An interpreter TensorFlow 2.15 has wheels for (CPython 3.9 to 3.11)."""
    if (3, 9) <= sys.version_info[:2] <= (3, 11):
        return sys.executable
    for name in ("python3.11", "python3.10", "python3.9"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("the seed's environment needs Python 3.9-3.11 (TensorFlow 2.15); pass --seed-python")


def ensure_seed_python(venv: Path) -> Path:
    """The seed environment's python: ``venv`` made (or remade when the requirements changed) from
    models/requirements-convert.txt plus musicnn's checkpoints. About 2 GB, a few minutes, once."""
    python = venv / "bin" / "python"
    stamp = venv / ".requirements-sha256"
    if python.exists() and stamp.exists() and stamp.read_text() == _venv_fingerprint():
        return python
    print(f"making the seed's environment in {venv} (TensorFlow; once)", file=sys.stderr)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([_python_for_tensorflow(), "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    subprocess.run([*pip, "--no-deps", MUSICNN], check=True)
    stamp.write_text(_venv_fingerprint())
    return python


class SeedWorker:
    """bench/seed_pipeline.py in a subprocess: ``analyze(path)`` returns its JSON answer."""

    def __init__(self, python: Path, warmup_clip: Path, log_path: Path) -> None:
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONWARNINGS": "ignore",
        }
        self.log_path = log_path
        self._log: TextIO = log_path.open("w")
        self._proc = subprocess.Popen(
            [str(python), str(SEED_SCRIPT), "--warmup", str(warmup_clip)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        ready = self._read()
        self.load_s: float = ready["load_s"]
        self.warmup_s: float = ready["warmup_s"]
        self.versions: dict[str, str] = ready["versions"]

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"the seed pipeline stopped; see {self.log_path}")
        return json.loads(line)

    def analyze(self, path: Path) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{path}\n")
        self._proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"seed pipeline failed on {path}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()

    def __enter__(self) -> SeedWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
