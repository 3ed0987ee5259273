"""Training a cross-encoder reranker: deterministic, resumable, with its lineage, and it learns."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
import torch

from strongroom.errors import ConfigError
from strongroom.retrieve import search
from strongroom.service.training import write_reranker_lineage
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.text import dense_text
from strongroom.train.pairs import Pair, make_pairs
from strongroom.train.reranker import Reranker, RerankerConfig, mine_negatives, train_reranker
from strongroom.train.runner import is_complete, latest_checkpoint
from strongroom.types import Scope
from tests.train.ddp_job import WORDS

SCOPE = Scope(frozenset({"public"}))
EVAL_SHARE, SEED = 0.3, 3


def _store(home: Path, embedder: HashEmbedder) -> SqliteStore:
    """Six filings of two pages; every page is headed by a label no other page has, and
    shares a word with some others (so the keyword search finds near misses)."""
    labels = list(itertools.combinations(WORDS, 2))
    store = SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)
    for doc in range(6):
        pages = []
        for page in range(2):
            a, b = labels[(doc * 2 + page) * 7 % len(labels)]
            pages.append(f"# {a} {b}\n{a} {b} {10 + doc} {20 + page}\n")
        store.write(make_version(embedder, f"co{doc}.txt", pages))
    return store


def _pairs(store: SqliteStore, embedder: HashEmbedder) -> list[Pair]:
    pairs = list(make_pairs(store.iter_versions(), store, SCOPE, split="train", eval_share=EVAL_SHARE, seed=SEED))
    return mine_negatives(pairs, store, lambda query: search(store, embedder, query, SCOPE, k=4))


def _config(tiny_model: str, out: Path, **overrides: object) -> RerankerConfig:
    settings: dict[str, object] = {"base_model": tiny_model, "output_dir": out, "steps": 7, "batch_size": 4,
                                   "group": 3, "checkpoint_every": 2, "learning_rate": 1e-3, "max_seq_length": 32}  # fmt: skip
    return RerankerConfig.model_validate({**settings, **overrides})


def _weights(folder: Path | str) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)  # a folder without a head gets a fresh one; make it the same every time
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1, local_files_only=True)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_mined_negatives_are_retrievals_near_misses_off_the_positives_page(
    tmp_path: Path, embedder: HashEmbedder
) -> None:
    store = _store(tmp_path, embedder)
    plain = list(make_pairs(store.iter_versions(), store, SCOPE, split="train", eval_share=EVAL_SHARE, seed=SEED))
    mined = _pairs(store, embedder)
    assert [p.chunk_id for p in mined] == [p.chunk_id for p in plain]
    for before, after in zip(plain, mined, strict=True):
        assert after.negatives[1:] == before.negatives  # the pairs' own hard negatives stay, after the mined one
        assert after.negatives[0] != after.positive
    store.close()


def test_an_interrupted_run_resumes_to_bitwise_identical_weights(
    tiny_model: str, tmp_path: Path, embedder: HashEmbedder
) -> None:
    store = _store(tmp_path / "home", embedder)
    pairs = _pairs(store, embedder)
    store.close()
    straight = _weights(train_reranker(_config(tiny_model, tmp_path / "straight"), pairs))
    again = _weights(train_reranker(_config(tiny_model, tmp_path / "again"), pairs))
    assert all(torch.equal(straight[k], again[k]) for k in straight)  # deterministic

    train_reranker(_config(tiny_model, tmp_path / "resumed"), pairs, stop_after=5)  # "killed" after step 5
    checkpoints = tmp_path / "resumed" / "checkpoints"
    assert latest_checkpoint(checkpoints) == checkpoints / "step-4"
    assert not (tmp_path / "resumed" / "model").exists()  # an unfinished run saves no model
    steps: list[int] = []
    resumed = _weights(train_reranker(_config(tiny_model, tmp_path / "resumed"), pairs, on_step=lambda s, _: steps.append(s)))  # fmt: skip
    assert steps == [5, 6, 7]
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    base = _weights(tiny_model)
    assert not all(torch.equal(base[k], straight[k]) for k in base if not k.startswith("classifier"))  # it trained
    assert sorted(p.name for p in checkpoints.glob("step-*") if is_complete(p)) == ["step-6", "step-7"]


def test_the_lineage_names_what_it_trained_on_and_what_was_held_out(
    tiny_model: str, tmp_path: Path, embedder: HashEmbedder
) -> None:
    store = _store(tmp_path / "home", embedder)
    pairs = _pairs(store, embedder)
    model = train_reranker(_config(tiny_model, tmp_path / "out", steps=2), pairs)
    lineage = write_reranker_lineage(model, store, training_pairs=len(pairs), eval_share=EVAL_SHARE, seed=SEED)
    assert json.loads((model / "strongroom-lineage.json").read_text()) == lineage
    held = set(lineage["held_out_documents"])  # type: ignore[call-overload]
    assert held and held.isdisjoint(p.positive.split(" — ")[0] for p in pairs)
    trained, held_versions = lineage["trained_on_versions"], lineage["held_out_versions"]
    assert isinstance(trained, list) and isinstance(held_versions, list)
    assert len(trained) + len(held_versions) == 6 and set(trained).isdisjoint(held_versions)
    assert lineage["training_pairs"] == len(pairs) and lineage["steps"] == 2
    assert lineage["base_model_path"] == tiny_model and lineage["config"]["group"] == 3  # type: ignore[index]
    weights = (model / "model.safetensors").read_bytes()
    assert lineage["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert len(str(lineage["store_digest"])) == 64
    store.close()


def test_a_trained_reranker_puts_each_positive_above_its_negatives(
    tiny_model: str, tmp_path: Path, embedder: HashEmbedder
) -> None:
    store = _store(tmp_path / "home", embedder)
    pairs = _pairs(store, embedder)
    # a random two-layer model needs a few hundred steps to learn to match words; they take seconds
    config = _config(tiny_model, tmp_path / "out", steps=300, learning_rate=2e-3, checkpoint_every=300)
    model = train_reranker(config, pairs)
    reranker = Reranker(model, max_length=32)
    for pair in pairs:
        positive, *negatives = reranker.scores(pair.query, [pair.positive, *pair.negatives])
        assert positive > max(negatives), pair.query
        trained_on = {pair.positive, *pair.negatives}
        hits = [h for h in search(store, embedder, pair.query, SCOPE, k=12) if dense_text(h.chunk) in trained_on]
        reranked = reranker.rerank(pair.query, hits[::-1], top=2)  # retrieval's order upside down
        assert len(reranked) == 2 and reranked[0].chunk.id == pair.chunk_id, pair.query
        assert reranked[0].score > reranked[1].score
    assert reranker.rerank("anything", [], top=5) == []
    with pytest.raises(ConfigError, match="no trained reranker head"):
        Reranker(tiny_model)  # an encoder with no head would rank by noise
    store.close()
