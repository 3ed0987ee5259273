"""A cheaper encoder for query text: the same model, exported to ONNX with int8 weights.

Under load the HTTP service spends most of its CPU embedding queries. The int8 copy of the
configured sentence-transformers model costs about 2.3 times less CPU per query on these
machines and agrees with the full model to a cosine of about 0.99, so its query vectors
search the vectors the full model stored for the documents (documents are always embedded
by the full model). It is built once from the local weights, with no network, and kept
under ``home/models``; each build is checked against the full model on a fixed probe set
and refused if they disagree (:data:`MIN_AGREEMENT`).

Needs the ``onnx`` extra (``onnxruntime`` and ``onnx``). Chosen with
``STRONGROOM_QUERY_ENCODER=onnx-int8``; the default, ``model``, uses the full model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np

from strongroom.config import QueryEncoderName
from strongroom.embed import CachedEmbedder, Embedder, LazyEmbedder, SentenceTransformerEmbedder, Vectors, normalise
from strongroom.errors import ConfigError

__all__ = ["MIN_AGREEMENT", "PROBES", "OnnxQueryEncoder", "create_query_encoder"]

log = logging.getLogger(__name__)

#: a build whose query vectors fall below this cosine to the full model's is refused
MIN_AGREEMENT = 0.98

#: questions of the kind analysts ask, to compare the int8 copy with the full model
PROBES = (
    "What was total net revenue in the second quarter?",
    "How much cash and cash equivalents did the company hold at the end of the period?",
    "operating income year over year change",
    "Which risk factors relate to interest rates and foreign exchange?",
    "diluted earnings per share for the nine months ended September 30",
    "What did management say about liquidity and capital resources?",
    "share repurchase program remaining authorization",
    "gross margin percentage by segment",
    "Were there any material legal proceedings or contingencies?",
    "long-term debt maturities and interest expense",
    "How did research and development expenses change compared to last year?",
    "effective tax rate",
    "revenue by geographic region: Americas, Europe, Greater China",
    "inventory write-downs and supply chain constraints",
    "What are the terms of the autocallable note's coupon barrier?",
    "dividends declared per common share",
)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_ENCODING_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}  # tokenizers'


def _fingerprint(model_dir: Path) -> str:
    """A short hash of the model's files: a new model or new weights get a new build."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)}\x00{stat.st_size}\x00".encode())
        if path.suffix in {".safetensors", ".bin", ".json"}:
            with path.open("rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()[:16]


class OnnxQueryEncoder:
    """An :class:`~strongroom.embed.Embedder` for queries, compatible with ``base``'s vectors.

    Its activations are quantized with one scale per call, so a query's vector moves a
    little with the other queries batched with it: a cosine distance of about 0.01, up to
    0.05 for a query of punctuation alone.
    """

    def __init__(self, base: SentenceTransformerEmbedder, cache_dir: Path, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ConfigError("query_encoder=onnx-int8 needs the onnx extra: pip install 'strongroom[onnx]'") from exc
        self.model_id = base.model_id
        self.dim = base.dim
        self._base = base
        path = cache_dir / f"{base.path.name}-{_fingerprint(base.path)}-int8.onnx"
        if not path.exists():
            self._build(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a truncated or foreign file: rebuild once
            log.warning("rebuilding the int8 query encoder: %s could not be loaded (%s)", path, exc)
            path.unlink(missing_ok=True)
            self._build(path)
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._names = {i.name for i in self._session.get_inputs()}
        self._tokenizer = _fast_tokenizer(base)
        self.agreement = self._check()
        log.info("int8 query encoder %s ready (agreement with the full model: %.4f)", path.name, self.agreement)

    def _build(self, path: Path) -> None:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        path.parent.mkdir(parents=True, exist_ok=True)
        model = self._base.model
        features = model.tokenize(list(PROBES[:2]))
        names = [n for n in _INPUTS if n in features]

        class Pooled(torch.nn.Module):
            """The whole sentence-transformers pipeline (encoder, pooling, normalisation) on tensors."""

            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                out: torch.Tensor = self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]
                return out

        full = path.with_suffix(f".fp32.{os.getpid()}.tmp")
        quantized = path.with_suffix(f".{os.getpid()}.tmp")
        log.info("building the int8 query encoder at %s (once; about 10 s)", path)
        try:
            # the TorchScript exporter warns that it is the legacy one and that tracing fixes shapes;
            # both are expected here (the axes that vary are declared dynamic)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    Pooled().eval(),
                    tuple(features[n] for n in names),
                    str(full),
                    input_names=names,
                    output_names=["embedding"],
                    dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "embedding": {0: "batch"}},
                    opset_version=17,
                    dynamo=False,
                )
            # int8 weights per output channel: 0.99 cosine to the full model where per-tensor gives 0.97
            quantize_dynamic(str(full), str(quantized), weight_type=QuantType.QInt8, per_channel=True)
            quantized.replace(path)  # atomic: a reader sees no file or a whole one
        except Exception as exc:
            raise ConfigError(f"could not build the int8 query encoder: {exc}; use query_encoder=model") from exc
        finally:
            full.unlink(missing_ok=True)
            quantized.unlink(missing_ok=True)

    def _check(self) -> float:
        agreement = float(np.min(np.sum(self.embed(PROBES) * self._base.embed(PROBES), axis=1)))
        if agreement < MIN_AGREEMENT:
            raise ConfigError(
                f"the int8 query encoder disagrees with {self.model_id} (lowest cosine {agreement:.3f} < "
                f"{MIN_AGREEMENT}); this model does not quantize well: use query_encoder=model"
            )
        return agreement

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._tokenizer is None:
            features: dict[str, Any] = self._base.model.tokenize(list(texts))
            feeds = {n: features[n].numpy().astype(np.int64) for n in _INPUTS if n in self._names}
        else:
            encodings = self._tokenizer.encode_batch([t.strip() for t in texts])
            feeds = {
                n: np.asarray([getattr(e, _ENCODING_FIELDS[n]) for e in encodings], dtype=np.int64)
                for n in _INPUTS
                if n in self._names
            }
        (vectors,) = self._session.run(["embedding"], feeds)
        return normalise(vectors)


def _fast_tokenizer(base: SentenceTransformerEmbedder) -> Any:
    """The model's Rust tokenizer, set to truncate and pad as sentence-transformers does, or
    None (then the model's own ``tokenize`` is used). Called directly it skips the Python
    wrappers around it: about 0.3 ms a query, a tenth of the int8 model's time."""
    first = base.model[0]
    wrapper: Any = getattr(first, "tokenizer", None)
    backend = getattr(wrapper, "backend_tokenizer", None)
    if backend is None or getattr(first, "do_lower_case", False) or wrapper.pad_token is None:
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(backend.to_str())  # a copy: the model's own stays as it was
    tokenizer.enable_truncation(max_length=int(base.model.max_seq_length))
    tokenizer.enable_padding(pad_id=int(wrapper.pad_token_id), pad_token=str(wrapper.pad_token))
    probes = [p.strip() for p in (*PROBES, "", " padded  ", "long " * 400)]
    expected = base.model.tokenize(probes)["input_ids"].tolist()
    if [e.ids for e in tokenizer.encode_batch(probes)] != expected:
        log.warning("the fast tokenizer path disagrees with %s's own; using the slower one", base.model_id)
        return None
    return tokenizer


def create_query_encoder(kind: QueryEncoderName, embedder: Embedder, cache_dir: Path, threads: int = 1) -> Embedder:
    """The embedder for query text: ``embedder`` itself (``model``), or its int8 ONNX copy (``onnx-int8``)."""
    if kind not in get_args(QueryEncoderName):
        raise ConfigError(f"query_encoder must be one of {', '.join(get_args(QueryEncoderName))}, not {kind!r}")
    if kind == "model":
        return embedder
    inner = embedder.inner if isinstance(embedder, CachedEmbedder) else embedder
    if isinstance(inner, LazyEmbedder):
        inner = inner.load()
    if not isinstance(inner, SentenceTransformerEmbedder):
        raise ConfigError("query_encoder=onnx-int8 needs a local sentence-transformers embedder (minilm or a path)")
    return OnnxQueryEncoder(inner, cache_dir, threads)
