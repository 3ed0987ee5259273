"""A ChatModel that runs a transformers causal LM in-process on CPU, for air-gapped desks.

Generation runs in a worker thread (one per model, so calls to one model take turns);
tokens come back to the event loop as they are decoded. Nothing is ever downloaded: the
model and tokenizer load from a local directory with ``local_files_only=True``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from strongroom.errors import BackendUnavailable
from strongroom.llm.tool_text import ToolCallScanner, fallback_tools_block, message_dicts, tool_schemas
from strongroom.llm.types import ChatRequest, Delta, Usage

__all__ = ["LocalModel", "render_prompt"]


class _End:
    """Sentinel: the worker finished; its outcome is in its future."""


def render_prompt(tokenizer: Any, request: ChatRequest) -> str:
    """The prompt: the chat template with the request's tools (a system block listing them
    when the template ignores ``tools``), or a plain transcript for a base model."""
    tools = request.tools if request.tool_choice != "none" else ()
    if getattr(tokenizer, "chat_template", None):
        if not tools:
            turns = message_dicts(request.messages, native_tools=False)
            return str(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))
        native = message_dicts(request.messages, native_tools=True)
        try:
            with_tools = str(tokenizer.apply_chat_template(native, tools=tool_schemas(tools), tokenize=False,
                                                           add_generation_prompt=True))  # fmt: skip
            without = str(tokenizer.apply_chat_template(native, tokenize=False, add_generation_prompt=True))
        except Exception:  # a template that raises on tool_calls or the tool role: write them as text
            with_tools = without = ""
        if with_tools != without:
            return with_tools
        turns = _with_system(message_dicts(request.messages, native_tools=False), fallback_tools_block(tools))
        return str(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))
    # No chat template (a base model): a plain transcript ending where the answer starts.
    turns = message_dicts(request.messages, native_tools=False)
    if tools:
        turns = _with_system(turns, fallback_tools_block(tools))
    return "".join(f"{t['role']}: {t['content']}\n" for t in turns) + "assistant:"


def _with_system(turns: list[dict[str, Any]], block: str) -> list[dict[str, Any]]:
    if turns and turns[0]["role"] == "system":
        return [{"role": "system", "content": f"{turns[0]['content']}\n\n{block}"}, *turns[1:]]
    return [{"role": "system", "content": block}, *turns]


class LocalModel:
    """Stream from a local transformers model directory (``config.json``, weights, tokenizer).

        model = LocalModel("/models/smollm2-135m-instruct", name="local-smol", max_new_tokens=128)
        async for delta in model.stream(ChatRequest.of("What is a 10-Q?")):
            print(delta.text, end="")

    ``temperature`` None or 0 decodes greedily (deterministic); above 0 it samples. ``stop``
    strings are passed to transformers' ``stop_strings`` (the stop string ends the text).
    The model loads on first use, in the worker thread. ``gguf_file`` names a GGUF file in
    ``path`` to load instead of safetensors (transformers de-quantizes it; needs ``gguf``).

    Tools are offered the way open instruct models take them (the chat template's ``tools``,
    or a system block listing them); ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``
    blocks in what the model writes come back as whole :class:`ToolCall` values (ids
    ``call_<n>``, arguments as written) with finish reason ``tool_calls``. A small model
    often writes no call, or a malformed one: the caller refuses what it cannot use.
    """

    supports_tools = True

    def __init__(
        self, path: str | Path, *, name: str | None = None, max_new_tokens: int = 256, gguf_file: str | None = None
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.gguf_file = gguf_file
        self.max_new_tokens = max_new_tokens
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"strongroom-local-{self.name}")
        self._model: Any = None
        self._tokenizer: Any = None

    def __repr__(self) -> str:
        return f"LocalModel(name={self.name!r}, path={str(self.path)!r})"

    def _load(self) -> None:
        if self._model is not None:
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            extra: dict[str, Any] = {"gguf_file": self.gguf_file} if self.gguf_file else {}
            tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True, **extra)
            model: Any = AutoModelForCausalLM.from_pretrained(
                self.path, local_files_only=True, dtype=torch.float32, **extra
            )
        except (OSError, ValueError, ImportError) as exc:
            raise BackendUnavailable(
                f"{self.name}: cannot load a local model from {self.path} ({type(exc).__name__}: {exc}); "
                "point the deployment at a directory holding config.json, weights and a tokenizer"
            ) from exc
        model.eval()
        self._tokenizer, self._model = tokenizer, model

    def _generate(self, request: ChatRequest, streamer: Any, stop: threading.Event) -> tuple[int, int, int]:
        """Run in the worker thread: (prompt tokens, completion tokens, max new tokens)."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        self._load()
        tokenizer, model = self._tokenizer, self._model

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        encoded = tokenizer(render_prompt(tokenizer, request), return_tensors="pt",
                            add_special_tokens=False)  # fmt: skip
        prompt_len = int(encoded["input_ids"].shape[-1])
        max_new = request.max_tokens or self.max_new_tokens
        sampling = bool(request.temperature)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": sampling,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
            "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        }
        if sampling:
            kwargs["temperature"] = request.temperature
            if request.top_p is not None:
                kwargs["top_p"] = request.top_p
            if request.seed is not None:
                torch.manual_seed(request.seed)
        else:
            # a checkpoint's generation_config may default to sampling; greedy needs none of it
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs.update(stop_strings=list(request.stop), tokenizer=tokenizer)
        with torch.inference_mode():
            out = model.generate(**encoded, **kwargs)
        return prompt_len, int(out.shape[-1]) - prompt_len, max_new

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        from transformers import TextStreamer

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | _End] = asyncio.Queue()
        stop = threading.Event()

        class _Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    loop.call_soon_threadsafe(queue.put_nowait, text)

        def work() -> tuple[int, int, int]:
            try:
                self._load()
                streamer = _Streamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
                return self._generate(request, streamer, stop)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _End())

        offers_tools = bool(request.tools) and request.tool_choice != "none"
        scanner = ToolCallScanner() if offers_tools else None
        future = loop.run_in_executor(self._executor, work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    break
                shown = scanner.feed(item) if scanner else item
                if shown:
                    yield Delta(shown)
            try:
                prompt_tokens, completion_tokens, max_new = await future
            except BackendUnavailable:
                raise
            except Exception as exc:
                raise BackendUnavailable(
                    f"{self.name}: local generation failed ({type(exc).__name__}: {exc}); "
                    "check the model directory and the log"
                ) from exc
            finish = "length" if completion_tokens >= max_new else "stop"
            rest, calls = scanner.finish() if scanner else ("", ())
            if calls:
                finish = "tool_calls"
            yield Delta(rest, finish, Usage(prompt_tokens, completion_tokens), calls)
        finally:
            stop.set()  # a caller that left early stops generation at the next token

    def close(self) -> None:
        """Stop the worker thread once its current generation ends."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """The same as :meth:`close`, for ``Gateway.aclose``."""
        self.close()
