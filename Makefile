# ambiscope front door: `make demo` and `make test` work on a fresh machine.
# Override the interpreter or the torch build, e.g. `make TORCH="torch==2.13.0+cu128" demo`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ambiscope-installed
DEMO_DB ?= demo/ambiscope.db

.PHONY: demo test lint bench interop system-deps install clean

demo: install
	$(BIN)/ambiscope --db $(DEMO_DB) demo

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/bench_foundation.py

# Opt-in, not part of `test`: a real Label Studio (own venv under .interop/, installed once)
# on 127.0.0.1; export -> project -> annotate as two users -> export -> import, then stopped.
interop: install
	bash interop/run.sh

install: $(STAMP) system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes in first, pinned: an unpinned resolve would pull several GB of CUDA wheels.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# PortAudio for sounddevice playback. Only attempted as root and only when missing;
# without it playback degrades to a message, so a failed install is a warning.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libportaudio.so.2'; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
			(apt-get update -qq && apt-get install -y -qq libportaudio2 >/dev/null) \
				|| echo "warning: could not install libportaudio2; audio playback disabled"; \
		else \
			echo "note: libportaudio2 missing (install it for audio playback)"; \
		fi; \
	fi

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache
