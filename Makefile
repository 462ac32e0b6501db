# The README's two commands: `make demo` and `make test`. Both bootstrap .venv from nothing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-shuffled bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m drip.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The suite in a random order (pytest-randomly), to catch a test that leans on another's leftovers.
# The seed is printed at the top; `make test-shuffled SEED=1234` repeats an order.
test-shuffled: $(STAMP)
	$(BIN)/python -m pytest -p randomly $(if $(SEED),--randomly-seed=$(SEED),)

bench: $(STAMP)
	$(BIN)/drip bench all

clean:
	rm -rf $(VENV) .drip outbox preview demo *.egg-info
