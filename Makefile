PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean broker-start broker-stop broker-status broker-clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/foreshock replay reference-2022-10-04 --seed 1

# Writes the output of `make demo` into README.md; tests/test_readme.py checks it.
.PHONY: readme
readme: $(STAMP)
	$(BIN)/python tests/test_readme.py --write

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# A real single-node Kafka broker (KRaft) on 127.0.0.1, fetched with Maven on
# first use (broker/pom.xml) into broker/.jars/; state in broker/.run/.
# Its address is in broker/.run/bootstrap.
broker-start:
	$(PYTHON) broker/kafka.py start

broker-stop:
	$(PYTHON) broker/kafka.py stop

broker-status:
	$(PYTHON) broker/kafka.py status

broker-clean:
	$(PYTHON) broker/kafka.py stop --wipe

# The broker is stopped whatever pytest does; pytest's exit code is kept.
# (No $(MAKE) in these lines, so `make -n test` does not run pytest.)
test: lint
	$(PYTHON) broker/kafka.py start
	{ $(BIN)/pytest; rc=$$?; $(PYTHON) broker/kafka.py stop; exit $$rc; }

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
