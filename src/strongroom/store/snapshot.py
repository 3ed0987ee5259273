"""The in-memory indexes of the embedded store, and their on-disk snapshot.

An :class:`IndexSet` holds the BM25 and vector indexes over chunk positions 0..N-1, the
chunk id and version position of each, and the last catalog row it has seen. A second
BM25 index holds each chunk's *structural lines* (table rows and headings), each with the
chunk's context, so a question about "inventories" finds the one balance-sheet row that
says so even when prose about inventory outscores the whole table (small-to-big retrieval). The
snapshot is a cache: written with temporary names and ``os.replace``, its ``state.json``
last, and thrown away (rebuilt from the catalog) whenever it does not match.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import numpy.typing as npt

from strongroom.errors import StoreError
from strongroom.store.keyword import KeywordIndex
from strongroom.store.scope import VersionTable
from strongroom.store.vectors import VectorIndex
from strongroom.text import classify_lines

__all__ = ["IndexSet"]

log = logging.getLogger(__name__)
_BATCH = 5000


class IndexSet:
    def __init__(self, model_id: str, dim: int) -> None:
        self.model_id = model_id
        self.dim = dim
        self.keyword = KeywordIndex()
        self.lines = KeywordIndex()
        self.line_chunk: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.vectors = VectorIndex(dim)
        self.chunk_ids: list[str] = []
        self.row_of: dict[str, int] = {}  # chunk id -> row, so candidates map to versions without SQL
        self.chunk_version: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.last_row = 0

    @classmethod
    def load_or_create(cls, folder: Path, model_id: str, dim: int) -> IndexSet:
        state_path = folder / "state.json"
        if not state_path.exists():
            return cls(model_id, dim)
        try:
            state = json.loads(state_path.read_text())
            if state["model"] != model_id or state["dim"] != dim:
                return cls(model_id, dim)
            out = cls(model_id, dim)
            out.keyword = KeywordIndex.load(folder / "keyword.npz")
            out.lines = KeywordIndex.load(folder / "lines.npz")
            out.vectors = VectorIndex.load(folder / "vectors.npz")
            with np.load(folder / "rows.npz") as rows:
                out.chunk_ids = [str(x) for x in rows["ids"]]
                out.row_of = {cid: i for i, cid in enumerate(out.chunk_ids)}
                out.chunk_version = rows["version"].astype(np.int64)
                out.line_chunk = rows["line_chunk"].astype(np.int64)
            out.last_row = int(state["last_row"])
            n = len(out.chunk_ids)
            if not (len(out.keyword) == len(out.vectors) == len(out.chunk_version) == n == state["rows"]) or (
                len(out.line_chunk) != state["lines"]
            ):
                raise ValueError("snapshot parts disagree")
            return out
        except (OSError, ValueError, KeyError, TypeError, StoreError) as exc:
            log.warning("index snapshot under %s is unusable (%s); rebuilding from the catalog", folder, exc)
            return cls(model_id, dim)

    def catch_up(self, db: sqlite3.Connection, table: VersionTable) -> int:
        """Add the catalog's chunk rows written since ``last_row``; returns how many."""
        added = 0
        while True:
            rows = db.execute(
                "SELECT c.row, c.id, c.version_seq, c.context, c.text, e.vector FROM chunks c "
                "JOIN embeddings e ON e.key = c.embed_key WHERE c.row > ? ORDER BY c.row LIMIT ?",
                (self.last_row, _BATCH),
            ).fetchall()
            if not rows:
                return added
            start = len(self.chunk_ids)
            positions = np.arange(start, start + len(rows), dtype=np.int64)
            self.keyword.add(positions, [f"{r[3]}\n{r[4]}" for r in rows])
            self._add_lines(positions, [(r[3], r[4]) for r in rows])
            self.vectors.add(positions, np.stack([np.frombuffer(r[5], dtype=np.float32) for r in rows]))
            self.chunk_ids.extend(r[1] for r in rows)
            self.row_of.update((r[1], start + i) for i, r in enumerate(rows))
            seqs = np.array([r[2] for r in rows], dtype=np.int64)
            self.chunk_version = np.concatenate([self.chunk_version, table.position(seqs)])
            self.last_row = int(rows[-1][0])
            added += len(rows)

    def _add_lines(self, positions: npt.NDArray[np.int64], items: list[tuple[str, str]]) -> None:
        owners: list[int] = []
        texts: list[str] = []
        for position, (context, text) in zip(positions.tolist(), items, strict=True):
            for line in classify_lines(text):
                if line.kind != "text":
                    owners.append(position)
                    texts.append(f"{context}\n{text[line.start : line.end]}")
        if texts:
            start = len(self.line_chunk)
            self.lines.add(np.arange(start, start + len(texts), dtype=np.int64), texts)
            self.line_chunk = np.concatenate([self.line_chunk, np.array(owners, dtype=np.int64)])

    def search_lines(self, query: str, k: int, mask: npt.NDArray[np.bool_]) -> tuple[list[int], list[float]]:
        """Chunk positions ranked by their best structural line, at most ``k``."""
        if not len(self.line_chunk):
            return [], []
        rows, scores = self.lines.search(query, 4 * k, mask[self.line_chunk])
        chunks: list[int] = []
        best: list[float] = []
        seen: set[int] = set()
        for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
            chunk = int(self.line_chunk[row])
            if chunk not in seen:
                seen.add(chunk)
                chunks.append(chunk)
                best.append(float(score))
                if len(chunks) == k:
                    break
        return chunks, best

    def build(self) -> None:
        """Fold pending additions into every index now, not on the first search."""
        self.keyword.build()
        self.lines.build()
        self.vectors.build()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "state.json").unlink(missing_ok=True)  # invalid until every part is written
        self.build()
        self.keyword.save(folder / "keyword.npz")
        self.lines.save(folder / "lines.npz")
        self.vectors.save(folder / "vectors.npz")
        tmp = folder / "rows.tmp.npz"
        np.savez(tmp, ids=np.array(self.chunk_ids, dtype="U64"), version=self.chunk_version, line_chunk=self.line_chunk)
        os.replace(tmp, folder / "rows.npz")
        state = {
            "model": self.model_id,
            "dim": self.dim,
            "rows": len(self.chunk_ids),
            "lines": len(self.line_chunk),
            "last_row": self.last_row,
        }
        tmp_state = folder / "state.tmp.json"
        tmp_state.write_text(json.dumps(state))
        os.replace(tmp_state, folder / "state.json")
