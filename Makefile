PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test check lint install clean broker-start broker-stop broker-status broker-clean servers

# `$(call timed,NAME,COMMAND)`: run a phase and print its wall time, keeping its exit code.
timed = @s=$$(date +%s); $(2); rc=$$?; echo "== $(1): $$(( $$(date +%s) - s )) s"; exit $$rc

# Made afresh whenever not complete: a failed install (with another Python,
# say) is never built upon, and PYTHON= picks the interpreter again.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
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
	$(call timed,ruff,$(BIN)/ruff check . && $(BIN)/ruff format --check .)
	$(call timed,mypy,$(BIN)/mypy)

# The inner loop: lint, types and every test that needs no broker or server,
# but for the whole-day replays over many seeds; the fuzz tests at a tenth.
check: lint
	$(call timed,tests without a broker,FUZZ_SCALE=0.1 $(BIN)/pytest -m "not broker and not slow and not servers" --durations=15)

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

# The Debian packages behind the servers tests (infra/servers.py): Redis, its
# Prometheus exporter, Prometheus, Alertmanager, and Chromium with its driver
# (the incident page). Installed (as root) only when a binary is missing; none
# is run as a service, the tests start their own.
SERVER_PACKAGES := redis-server prometheus prometheus-redis-exporter prometheus-alertmanager \
	chromium chromium-driver
servers:
	@if ! command -v redis-server >/dev/null || ! command -v prometheus >/dev/null \
	    || ! command -v prometheus-redis-exporter >/dev/null \
	    || ! command -v prometheus-alertmanager >/dev/null \
	    || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  apt-get update && apt-get install -y --no-install-recommends $(SERVER_PACKAGES); \
	fi

# `$(call with_broker,COMMAND)`: COMMAND with the broker up, its exit code
# kept. A broker started here is stopped after, whatever COMMAND does; one
# that was running already (someone's own) is left running.
with_broker = up=$$($(PYTHON) broker/kafka.py status >/dev/null 2>&1 && echo yes); \
	$(PYTHON) broker/kafka.py start && $(1); rc=$$?; \
	[ -n "$$up" ] || $(PYTHON) broker/kafka.py stop; exit $$rc

# Everything, with the broker; pytest prints the 25 slowest tests.
# (No $(MAKE) in these lines, so `make -n test` does not run pytest.)
test: lint servers
	$(call timed,tests,( $(call with_broker,$(BIN)/pytest --durations=25) ))

# The lab: a real Redis that leaks, watched through Prometheus, remote_write,
# the broker and a worker (foreshock lab); everything it starts is stopped.
.PHONY: lab
lab: $(STAMP) servers
	( $(call with_broker,FORESHOCK_KAFKA_BOOTSTRAP=$$(cat broker/.run/bootstrap) $(BIN)/foreshock lab) )

# The remote_write message classes, from the .proto kept beside them.
.PHONY: proto
proto: $(STAMP)
	$(BIN)/pip install --quiet 'grpcio-tools>=1.85,<1.86'
	$(BIN)/python -m grpc_tools.protoc -Iinfra/ingest --python_out=infra/ingest \
		--pyi_out=infra/ingest infra/ingest/remote_write.proto

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
