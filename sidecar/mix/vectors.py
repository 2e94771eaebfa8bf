"""Vector helpers of the mix engine: unit vectors, cosine distances, the near-duplicate test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sidecar.mix.model import Candidate, Vector

CHUNK_SHIFT = 6  # candidate embeddings are stacked and normalised 64 at a time


def unit_rows(vectors: Sequence[Vector]) -> Vector:
    """The vectors as the rows of a float32 matrix, each scaled to unit length."""
    mat = np.array(vectors, dtype=np.float32)
    if mat.ndim != 2:
        raise ValueError("embeddings must all be 1-d vectors of the same length")
    norms = np.sqrt(np.einsum("ij,ij->i", mat, mat))
    np.maximum(norms, 1e-12, out=norms)
    mat /= norms[:, None]
    return mat


def unit(vector: Vector) -> Vector:
    vec = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.sqrt(np.dot(vec, vec)))
    return vec / norm if norm > 1e-12 else vec.copy()


def cosine_distance(a: Vector, b: Vector) -> float:
    """``1 - cos(a, b)``, the metric of the pgvector ``<=>`` operator (1.0 for a zero vector)."""
    ua, ub = unit(a), unit(b)
    return float(1.0 - np.clip(np.dot(ua, ub), -1.0, 1.0))


def total_distance(tracks: Sequence[Candidate]) -> float:
    """Sum of cosine distances between consecutive tracks (``total_distance`` of a path)."""
    if len(tracks) < 2:
        return 0.0
    mat = unit_rows([t.embedding for t in tracks])
    sims = np.einsum("ij,ij->i", mat[:-1], mat[1:])
    return float(np.sum(1.0 - np.clip(sims, -1.0, 1.0)))


class LazyRows:
    """Unit embeddings of a candidate list, normalised in chunks of 16..64 ranks as they are
    first needed (a mix usually looks at the first few dozen of hundreds of candidates)."""

    __slots__ = ("cands", "chunks", "shift")

    def __init__(self, cands: Sequence[Candidate], expected: int = 1 << CHUNK_SHIFT) -> None:
        self.cands = cands
        self.chunks: dict[int, Vector] = {}
        # chunk size fitted to the number of tracks this list is expected to supply
        self.shift = 4 if expected <= 6 else 5 if expected <= 14 else CHUNK_SHIFT

    def chunk(self, chunk_no: int) -> Vector:
        chunk = self.chunks.get(chunk_no)
        if chunk is None:
            lo = chunk_no << self.shift
            chunk = self.chunks[chunk_no] = unit_rows(
                [c.embedding for c in self.cands[lo : lo + (1 << self.shift)]]
            )
        return chunk

    def __getitem__(self, r: int) -> Vector:
        row: Vector = self.chunk(r >> self.shift)[r & ((1 << self.shift) - 1)]
        return row


class NearRefs:
    """Unit vectors every new track must stay ``threshold`` (cosine distance) away from."""

    __slots__ = ("on", "lim", "mat", "m", "capacity")

    def __init__(self, threshold: float, capacity: int) -> None:
        self.on = threshold > 0.0
        self.lim = np.float32(1.0 - threshold)
        self.mat: Vector | None = None
        self.m = 0
        self.capacity = max(capacity, 4)

    def add(self, unit_vector: Vector) -> None:
        if not self.on:
            return
        if self.mat is None:
            self.mat = np.empty((self.capacity, unit_vector.shape[0]), dtype=np.float32)
        elif self.m == self.mat.shape[0]:
            self.mat = np.concatenate([self.mat, np.empty_like(self.mat)])
        self.mat[self.m] = unit_vector
        self.m += 1

    def near(self, unit_vector: Vector, start: int = 0) -> bool:
        """Is *unit_vector* closer than the threshold to any reference from *start* on?"""
        if self.mat is None or start >= self.m:
            return False
        return bool((self.mat[start : self.m] @ unit_vector).max() > self.lim)

    def best_rows(self, rows: Vector) -> Vector:
        """Each row's highest similarity to a reference (-2 when there is none)."""
        if self.mat is None or self.m == 0:
            return np.full(len(rows), -2.0, dtype=np.float32)
        best: Vector = (rows @ self.mat[: self.m].T).max(axis=1)
        return best

    def near_rows(self, rows: Vector) -> list[bool]:
        """``near`` for each row of *rows* (unit vectors), in one matrix product."""
        if self.mat is None or self.m == 0 or len(rows) == 0:
            return [False] * len(rows)
        flags: list[bool] = ((rows @ self.mat[: self.m].T).max(axis=1) > self.lim).tolist()
        return flags
