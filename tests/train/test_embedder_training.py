"""Fine-tuning an embedder: pairs from the store, deterministic training, bitwise resume."""

from __future__ import annotations

from pathlib import Path

import torch

from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.train.embedder import TrainConfig, train_embedder
from strongroom.train.pairs import make_pairs, pseudo_queries, split_of
from strongroom.train.runner import is_complete, latest_checkpoint
from strongroom.types import Scope
from tests.train.ddp_job import pairs as _pairs


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from sentence_transformers import SentenceTransformer

    return {k: v.clone() for k, v in SentenceTransformer(str(folder), device="cpu").state_dict().items()}


def test_an_interrupted_run_resumes_to_bitwise_identical_weights(tiny_model: str, tmp_path: Path) -> None:
    def config(out: Path) -> TrainConfig:
        return TrainConfig(base_model=tiny_model, output_dir=out, steps=7, batch_size=4, checkpoint_every=2,
                           learning_rate=1e-3, keep=2, max_seq_length=32)  # fmt: skip

    straight = _weights(train_embedder(config(tmp_path / "straight"), _pairs()))
    train_embedder(config(tmp_path / "resumed"), _pairs(), stop_after=5)  # "killed" after step 5
    checkpoints = tmp_path / "resumed" / "checkpoints"
    assert latest_checkpoint(checkpoints) == checkpoints / "step-4"  # step 5 is lost: less than one interval
    (checkpoints / "step-6").mkdir()  # a save killed half-way: no rank said it was done
    (checkpoints / "step-6" / "WORLD").write_text("1")
    (checkpoints / "step-6" / "__0_0.distcp").write_bytes(b"torn")
    assert latest_checkpoint(checkpoints) == checkpoints / "step-4"  # never loaded
    steps: list[int] = []
    resumed = _weights(train_embedder(config(tmp_path / "resumed"), _pairs(), on_step=lambda s, _: steps.append(s)))
    assert steps == [5, 6, 7]
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert not all(torch.equal(straight[k], v) for k, v in _weights(Path(tiny_model)).items())  # it did train
    kept = sorted(p.name for p in checkpoints.glob("step-*") if is_complete(p))
    assert kept == ["step-6", "step-7"]  # the last two complete ones; the torn one was replaced


def test_pairs_from_the_store_split_by_document(tmp_path: Path, embedder: HashEmbedder) -> None:
    store = SqliteStore(tmp_path, model_id=embedder.model_id, dim=embedder.dim)
    for i in range(12):
        page = f"# Operating expenses\nResearch and development {100 + i} {90 + i}\nSales and marketing {50 + i} {40 + i}\n"
        store.write(make_version(embedder, f"2023 Q{i % 4 + 1} CO{i}.txt", [page], chunk_tokens=64))
    scope = Scope(frozenset({"public"}))
    train = list(make_pairs(store.iter_versions(), store, scope, split="train", eval_share=0.3, seed=1))
    held = list(make_pairs(store.iter_versions(), store, scope, split="eval", eval_share=0.3, seed=1))
    assert train and held and {p.document_id for p in train}.isdisjoint({p.document_id for p in held})
    assert all(split_of(p.document_id, 0.3, 1) == "train" for p in train)
    pair = train[0]
    assert pair.query.endswith("Operating expenses") or pair.query.endswith("Research and development")
    assert pair.negatives and all(n != pair.positive for n in pair.negatives)
    chunk = store.fetch([pair.chunk_id])[0][0]
    assert "Research and development" in pseudo_queries(chunk, 3)[1]
    assert "100" not in pseudo_queries(chunk, 3)[1]  # labels, not figures
    store.close()


def test_cli_trains_from_the_store_and_writes_the_lineage(
    tiny_model: str, tmp_path: Path, embedder: HashEmbedder
) -> None:
    import json
    import os
    import subprocess
    import sys

    store = SqliteStore(tmp_path / "home", model_id=embedder.model_id, dim=embedder.dim)
    for i in range(10):
        page = (
            f"# Cash and debt\nTotal revenue {10 + i} {20 + i}\nNet income {3 + i} {4 + i}\nThe quarter was steady.\n"
        )
        store.write(make_version(embedder, f"report {i}.txt", [page], chunk_tokens=64))
    store.close()
    config = tmp_path / "job.json"
    config.write_text(json.dumps({"base_model": tiny_model, "output_dir": str(tmp_path / "out"), "steps": 3,
                                  "batch_size": 4, "checkpoint_every": 2, "eval_share": 0.3, "max_seq_length": 32}))  # fmt: skip
    env = {**os.environ, "STRONGROOM_EMBEDDER": "hash"}
    done = subprocess.run([sys.executable, "-m", "strongroom.cli", "train", "embedder", str(config), "--home",
                           str(tmp_path / "home"), "--json"], env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lineage = json.loads((tmp_path / "out" / "model" / "strongroom-lineage.json").read_text())
    assert json.loads(done.stdout)["weights_sha256"] == lineage["weights_sha256"]
    assert lineage["training_pairs"] > 4 and lineage["held_out_documents"]
    assert lineage["held_out_versions"] and set(lineage["held_out_versions"]).isdisjoint(lineage["trained_on_versions"])
    assert len(lineage["weights_sha256"]) == 64 and len(lineage["store_digest"]) == 64
    bad = subprocess.run([sys.executable, "-m", "strongroom.cli", "train", "embedder", str(tmp_path / "nope.json")],
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "cannot use" in bad.stderr
