"""LoRA fine-tuning of a causal LM: a tiny random-weight Llama made here, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from strongroom.errors import ConfigError
from strongroom.train.generator import GeneratorConfig, load_examples, train_generator

pytest.importorskip("peft", reason="LoRA needs peft: pip install peft")

EXAMPLES = [
    ("what coupon does bond alpha pay", "bond alpha pays four percent"),
    ("what coupon does bond beta pay", "bond beta pays five percent"),
    ("who audits the bank", "the auditor is delta partners"),
    ("when does bond alpha mature", "bond alpha matures in twenty thirty"),
    ("when does bond beta mature", "bond beta matures in twenty forty"),
    ("what is the cet1 ratio", "the cet1 ratio is fourteen percent"),
    ("what is the leverage ratio", "the leverage ratio is five percent"),
    ("who is the issuer of bond alpha", "the issuer is gamma bank"),
]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A two-layer Llama with a word-level vocabulary of the examples' words."""
    from transformers import BertTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    words = sorted({w for pair in EXAMPLES for text in pair for w in text.split()} | {"###", "instruction", "answer"})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), eos_token="[SEP]", pad_token="[PAD]")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=0, eos_token_id=3, bos_token_id=2,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"instruction": i, "answer": a}) + "\n" for i, a in EXAMPLES))
    return path


def _config(tiny_lm: str, data: Path, out: Path, **kw: object) -> GeneratorConfig:
    base = {"base_model": tiny_lm, "data": data, "output_dir": out, "seed": 3, "batch_size": 4, "steps": 12,
            "learning_rate": 2e-2, "target_modules": "all-linear", "checkpoint_every": 4, "max_seq_length": 64}  # fmt: skip
    return GeneratorConfig.model_validate({**base, **kw})


def _answer_loss(model: object, tiny_lm: str) -> float:
    """Mean loss over the examples' answer tokens (the prompt masked), as training computes it."""
    from transformers import AutoTokenizer

    from strongroom.train.generator import Example, _batch, _encode

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm, local_files_only=True)
    batch = _batch(_encode(tokenizer, [Example(i, a) for i, a in EXAMPLES], 64), 0)
    with torch.no_grad():
        return float(model(**batch).loss)  # type: ignore[operator]


def test_lora_learns_and_saves_only_an_adapter(tiny_lm: str, data: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    losses: list[float] = []
    adapter = train_generator(
        _config(tiny_lm, data, tmp_path / "job", steps=40, checkpoint_every=20),
        on_step=lambda step, loss: losses.append(loss),
    )
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert len(losses) == 40 and last < first - 0.3, (first, last)
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "strongroom-training.json").read_text())["steps"] == 40
    # checkpoints hold the adapter and its optimizer state, never the frozen base weights
    from torch.distributed.checkpoint import FileSystemReader

    kept = sorted((tmp_path / "job" / "checkpoints").glob("step-*"))
    assert [p.name for p in kept] == ["step-20", "step-40"]
    saved = list(FileSystemReader(str(kept[-1])).read_metadata().state_dict_metadata)
    weights = [k for k in saved if k.startswith("model.")]
    assert weights and all("lora_" in k for k in weights), weights[:5]
    # the saved adapter on a freshly loaded base model is the trained model
    base = AutoModelForCausalLM.from_pretrained(tiny_lm, local_files_only=True)
    before = _answer_loss(base, tiny_lm)
    tuned = PeftModel.from_pretrained(base, str(adapter)).eval()
    after = _answer_loss(tuned, tiny_lm)
    assert after < before - 0.3 and abs(after - last) < 0.2, (before, after, last)


def test_a_resumed_lora_run_ends_bitwise_identical(tiny_lm: str, data: Path, tmp_path: Path) -> None:
    straight = train_generator(_config(tiny_lm, data, tmp_path / "straight"))
    resumed_dir = tmp_path / "resumed"
    train_generator(_config(tiny_lm, data, resumed_dir), stop_after=6)  # checkpoint at 4, steps 5-6 lost
    assert not (resumed_dir / "adapter").exists()
    steps: list[int] = []
    resumed = train_generator(_config(tiny_lm, data, resumed_dir), on_step=lambda s, _: steps.append(s))
    assert steps[0] == 5 and steps[-1] == 12  # resumed from the checkpoint at step 4
    a = (straight / "adapter_model.safetensors").read_bytes()
    b = (resumed / "adapter_model.safetensors").read_bytes()
    assert a == b


def test_bad_training_data_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "q", "answer": "a"}\n{"question": "q"}\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2: not an .*instruction"):
        load_examples(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="holds no examples"):
        load_examples(empty)
    with pytest.raises(ConfigError, match="cannot read"):
        load_examples(tmp_path / "missing.jsonl")


def test_the_cli_trains_an_adapter_and_refuses_a_bad_config(tiny_lm: str, data: Path, tmp_path: Path) -> None:
    from tests.test_cli import run

    job = tmp_path / "job.json"
    job.write_text(json.dumps({"base_model": tiny_lm, "data": str(data), "output_dir": str(tmp_path / "out"),
                               "steps": 4, "batch_size": 4, "checkpoint_every": 2}))  # fmt: skip
    done = run(tmp_path / "home", "train", "generator", str(job), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["adapter"] == str(tmp_path / "out" / "adapter")
    job.write_text(json.dumps({"base_model": str(tmp_path / "nowhere"), "data": str(data),
                               "output_dir": str(tmp_path / "out2"), "steps": 2, "batch_size": 4}))  # fmt: skip
    refused = run(tmp_path / "home", "train", "generator", str(job))
    assert refused.returncode == 1 and "cannot load the causal LM" in refused.stderr
    assert "Traceback" not in refused.stderr
