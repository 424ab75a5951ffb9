# Three commands set everything up on a machine with only python3 and make:
#   make demo   creates .venv, installs Centralita, serves the demo with a pretend Asterisk
#   make run    the same without the pretend Asterisk (serves the demo config)
#   make test   ruff, mypy and pytest
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo run test lint typecheck pytest bench bench-compare sounds clean

# setup.py builds the C cores of the FastAGI command path (agi/_speedups.c) when a C compiler
# is there; editing the C source rebuilds them.
$(STAMP): pyproject.toml setup.py agi/_speedups.c agi/_headerblock.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The benchmarks also need what they compare against (the `bench` extra: panoramisk).
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/centralita demo

run: $(STAMP)
	$(BIN)/centralita serve $(if $(CONFIG),--config $(CONFIG),)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check agi ami dialplan centralita tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The integration suite (tests/integration) runs on a real Asterisk when CENTRALITA_ASTERISK
# names one or more installs (README "The integration suite"): one pytest per combination.
# The FastAGI tests run a second time on the command path's pure-Python cores, which run
# wherever no C compiler built agi/_speedups.c (agi/cores.py).
pytest: $(STAMP)
	$(BIN)/pytest -q -m "not asterisk"
	CENTRALITA_NO_SPEEDUPS=1 $(BIN)/pytest -q -m "not asterisk" tests/agi_loops \
		tests/test_agi_protocol.py tests/test_agi_metrics.py tests/test_agi_cores.py \
		tests/test_flow_hangups.py tests/test_agi_simulator_fidelity.py
	$(BIN)/python tests/integration/parallel.py

test: lint typecheck pytest

bench: $(BENCH_STAMP)
	$(BIN)/python bench/agi_load.py
	$(BIN)/python bench/agi_inproc.py
	@for b in bench/agi_instances.py bench/render_bench.py bench/lookup_bench.py bench/pop_bench.py bench/agent_state_bench.py bench/login_flood.py bench/wallboard_bench.py bench/store_bench.py bench/report_bench.py; do \
		if [ -f $$b ]; then echo; $(BIN)/python $$b || exit 1; fi; done

# This tree against REV (default HEAD~1), measured side by side in alternating rounds:
# FastAGI CPU per call and screen-pop latency, with the ratio (bench/compare.py).
bench-compare: $(STAMP)
	$(BIN)/python bench/compare.py $(if $(REV),--rev $(REV),)

# Builds the prompts with espeak-ng and sox (Debian packages). The built WAVs are committed,
# so only whoever changes a prompt text needs this.
sounds: $(STAMP)
	@if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq espeak-ng sox; \
	fi
	$(BIN)/python -m centralita.sounds build
	$(BIN)/python -m centralita.sounds check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
