# Two commands on a fresh machine: `make demo` and `make test`. Both set up what they need
# (system packages, the virtualenv, the Kafka jars) and are safe to run again.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
KAFKA_STAMP := .kafka/lib/.fetched

.PHONY: setup system-deps demo test lint kafka-start kafka-stop bench clean

setup: system-deps $(PY_STAMP) $(KAFKA_STAMP)

system-deps:
	@scripts/system-deps.sh

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -c 'from driftline.detectors.kernels import warm_up; warm_up()'  # numba, once
	touch $@

# The official Apache Kafka jars from Maven Central (see kafka/pom.xml for the version).
$(KAFKA_STAMP): kafka/pom.xml
	rm -rf .kafka/lib
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/.kafka/lib
	touch $@

demo: setup
	$(BIN)/driftline demo

lint: $(PY_STAMP)
	$(BIN)/ruff check driftline tests bench
	$(BIN)/ruff format --check driftline tests bench
	$(BIN)/mypy
	$(BIN)/mkdocs build --strict --quiet --site-dir .driftline/site

test: setup lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/throughput.py

kafka-start: setup
	scripts/kafka.sh start

kafka-stop:
	scripts/kafka.sh stop

clean:
	-scripts/kafka.sh stop
	rm -rf $(VENV) .kafka .driftline
