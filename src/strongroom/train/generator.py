"""LoRA fine-tuning of a causal language model on instruction/answer pairs (peft).

The same job runner as the embedder's: a seeded, step-addressed sampler; torchrun data
parallelism with one gradient all-reduce per step; torch.distributed.checkpoint saves every
``checkpoint_every`` steps (synchronous or in the background), counted only when every rank
finished; resuming bit for bit. Only the adapter is trained, so checkpoints hold only the
adapter's weights and its optimizer state, never the frozen base model.

The data is JSONL, one ``{"instruction": ..., "answer": ...}`` object a line. The loss is the
answer's tokens only: the prompt (the tokenizer's chat template when it has one, else a plain
"### Instruction / ### Answer" frame) is masked out. The result is a peft adapter folder
(``adapter_config.json``, ``adapter_model.safetensors``) with the tokenizer beside it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from strongroom.errors import ConfigError
from strongroom.train.runner import CheckpointSaver, JobConfig, Ranks, batch_rows, resume, run_steps

__all__ = ["Example", "GeneratorConfig", "load_examples", "train_generator"]

log = logging.getLogger(__name__)

PROMPT = "### Instruction:\n{instruction}\n\n### Answer:\n"


class GeneratorConfig(JobConfig):
    """A LoRA job, as its JSON config file holds it."""

    base_model: str = Field(description="A transformers causal LM folder (weights and tokenizer).")
    data: Path = Field(description="JSONL of {'instruction': ..., 'answer': ...} objects.")
    batch_size: int = Field(default=8, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0)
    max_seq_length: int = Field(default=512, ge=8)
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | str | None = Field(
        default=None, description='Module names to adapt, or "all-linear"; None: peft\'s default for the model.'
    )


@dataclass(frozen=True)
class Example:
    instruction: str
    answer: str


def load_examples(path: Path) -> list[Example]:
    """The examples of a JSONL file; a bad line is a ConfigError naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the training data {path}: {exc}") from exc
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            instruction, answer = obj["instruction"], obj["answer"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f'{path}:{number}: not an {{"instruction": ..., "answer": ...}} object ({exc}); fix or remove the line'
            ) from exc
        if not isinstance(instruction, str) or not isinstance(answer, str) or not instruction.strip() or not answer:
            raise ConfigError(f"{path}:{number}: instruction and answer must be non-empty strings")
        examples.append(Example(instruction, answer))
    if not examples:
        raise ConfigError(f"{path} holds no examples")
    return examples


def _prompt(tokenizer: Any, instruction: str) -> str:
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": instruction}]
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return PROMPT.format(instruction=instruction)


def _encode(tokenizer: Any, examples: Sequence[Example], max_len: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example: the prompt's labels are -100, the answer's its ids."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    encoded = []
    for ex in examples:
        prompt = tokenizer(_prompt(tokenizer, ex.instruction), add_special_tokens=True)["input_ids"]
        answer = tokenizer(ex.answer, add_special_tokens=False)["input_ids"] + eos
        ids = (prompt + answer)[:max_len]
        labels = ([-100] * len(prompt) + answer)[:max_len]
        if all(label == -100 for label in labels):
            raise ConfigError(f"the prompt of {ex.instruction[:60]!r} fills max_seq_length {max_len}; raise it")
        encoded.append((ids, labels))
    return encoded


def _batch(items: Sequence[tuple[list[int], list[int]]], pad: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (i, lab) in enumerate(items):
        ids[row, : len(i)] = torch.tensor(i)
        labels[row, : len(lab)] = torch.tensor(lab)
        mask[row, : len(i)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def train_generator(
    config: GeneratorConfig,
    *,
    stop_after: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> Path:
    """Train (or resume) a LoRA adapter; saves it under ``output_dir/adapter`` and returns that folder."""
    import torch

    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("LoRA training needs peft: pip install 'strongroom[lora]'") from exc
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    examples = load_examples(config.data)
    ranks = Ranks()
    if config.batch_size % ranks.world:
        raise ConfigError(f"batch_size {config.batch_size} does not split over {ranks.world} ranks; make it a multiple")
    if len(examples) < config.batch_size:
        raise ConfigError(f"{len(examples)} examples is fewer than one batch of {config.batch_size}")
    torch.manual_seed(config.seed)  # the adapter's initial weights: the same on every rank
    np.random.seed(config.seed + ranks.rank)
    random.seed(config.seed + ranks.rank)
    torch.use_deterministic_algorithms(True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.base_model, local_files_only=True)
        base = AutoModelForCausalLM.from_pretrained(config.base_model, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the causal LM at {config.base_model}: {exc}") from exc
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=config.target_modules, task_type="CAUSAL_LM",
    )  # fmt: skip
    try:
        model = get_peft_model(base, lora)
    except ValueError as exc:
        raise ConfigError(f"cannot put LoRA on {config.base_model}: {exc}; set target_modules") from exc
    model.to(ranks.device)  # this rank's GPU when there are GPUs, else the CPU
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    # frozen base weights are neither saved nor loaded (strict=False), and resume() checks
    # that every trained weight was
    options = StateDictOptions(ignore_frozen_params=True, strict=False)
    get_state_dict(model, optimizer, options=options)  # every parameter gets its optimizer state now
    encoded = _encode(tokenizer, examples, config.max_seq_length)
    checkpoints = config.output_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    step = resume(checkpoints, model, optimizer, ranks, options)
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    saver = CheckpointSaver(checkpoints, ranks, config.keep, config.async_save and ranks.world > 1, options)
    out = config.output_dir / "adapter"

    def loss_at(step: int) -> Any:
        rows = batch_rows(config.seed, step, len(encoded), config.batch_size)
        batch = _batch([encoded[i] for i in rows[ranks.rank :: ranks.world]], pad)
        return model(**{k: v.to(ranks.device) for k, v in batch.items()}).loss

    try:
        step, _ = run_steps(
            model, optimizer, ranks, saver, loss_at, step=step, end=end, steps=config.steps,
            every=config.checkpoint_every, on_step=on_step,
        )  # fmt: skip
        if step >= config.steps and ranks.rank == 0:
            model.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            training = {"base_model": config.base_model, "steps": step, "world_size": ranks.world,
                        "examples": len(examples), "config": config.model_dump(mode="json")}  # fmt: skip
            (out / "strongroom-training.json").write_text(json.dumps(training, indent=1))
        ranks.barrier()
    finally:
        ranks.close()
    return out
