"""Fixtures for the gateway tests: scripted OpenAI-compatible servers on loopback, a fake
clock, and a tiny random-weight causal LM built at test time (no network, no hub)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strongroom.testing.openai_server import FakeOpenAIServer, Reply, Responder


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_server() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """Start scripted servers on 127.0.0.1 (ephemeral ports); all stop after the test."""
    started: list[FakeOpenAIServer] = []

    def make(default: Reply | Responder | None = None) -> FakeOpenAIServer:
        server = FakeOpenAIServer(default).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., FakeOpenAIServer]) -> FakeOpenAIServer:
    return make_server(Reply.stream("The bank's capital ratio is 14%."))


TINY_CORPUS = [
    "the bank reported revenue growth in the third quarter",
    "capital ratios remain above the regulatory minimum",
    "net interest income rose while credit losses fell",
    "the board approved a dividend and a share buyback",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Llama (hidden size 32, 2 layers) with a word-level tokenizer and a
    chat template, saved as a transformers directory. Built offline in about a second."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted({w for line in TINY_CORPUS for w in line.split()} | {"user:", "assistant:", "system:"})
    vocab = {tok: i for i, tok in enumerate(["<s>", "</s>", "<unk>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path
