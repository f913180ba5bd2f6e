# The two set-up commands are `make run` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# Heavy things are cached outside the clone, keyed by what they depend on:
# the virtualenv by requirements.lock, the Kafka jars by infra/kafka/pom.xml (~/.m2).
LLMOPS_CACHE ?= $(HOME)/.cache/llmops
export LLMOPS_CACHE_DIR := $(LLMOPS_CACHE)
# llama-cpp-python ships as source only: it is compiled once (long, on 2 cores) into a wheel
# cache keyed by its version and build flags, so a new lock or a fresh clone reuses the wheel.
# Without OpenMP: torch brings its own libgomp, llama.cpp would share it, and two OpenMP
# teams in one process (queries and answers) slow each other by a tenth to a quarter.
LLAMA_VERSION := $(shell sed -n -E 's/^llama[-_]cpp[-_]python==//p' requirements.lock)
LLAMA_CMAKE_ARGS := -DGGML_OPENMP=OFF
LLAMA_FLAVOUR := $(shell echo "$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)" | sha256sum | cut -c1-8)
WHEELS := $(LLMOPS_CACHE)/wheels/llama-cpp-python-$(LLAMA_FLAVOUR)
LLAMA_WHEEL := $(WHEELS)/.built
LOCK_HASH := $(shell cat requirements.lock <(echo $(LLAMA_FLAVOUR)) | sha256sum | cut -c1-12)
# Two virtualenvs. The heavy one (torch, every pinned package) is shared by every clone,
# keyed by the lock. Each clone has its own thin .venv layered on it (a .pth file adds the
# heavy one's site-packages; pip and setuptools come from there too), holding only this
# project in editable mode: so .venv/bin/llmops runs this clone's code, whichever clone ran
# `make install` last.
BASE_VENV ?= $(LLMOPS_CACHE)/venv-$(LOCK_HASH)
BASE_READY := $(BASE_VENV)/.complete
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := .llmops/.installed-$(LOCK_HASH)
# Tools the tests use from Debian, installed when missing: a real headless Chromium for the
# page tests, docker-compose (v1) to check the compose file (no Docker engine needed), the
# real Prometheus and Alertmanager, Tesseract with its English data for OCR, and PostgreSQL
# (the database the change-data-capture tests stream from; its own server, never the system's).
TEST_TOOLS := /usr/bin/chromium /usr/bin/chromedriver /usr/bin/docker-compose \
	/usr/bin/prometheus /usr/bin/prometheus-alertmanager /usr/bin/tesseract \
	/usr/share/tesseract-ocr/5/tessdata/eng.traineddata /usr/bin/pg_ctlcluster /usr/bin/psql
TEST_PACKAGES := chromium chromium-driver docker-compose prometheus prometheus-alertmanager \
	tesseract-ocr tesseract-ocr-eng postgresql

.PHONY: help install run-tools test-tools connect-jars run test chaos test-unit test-integration lint bench up down kafka-start kafka-stop clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# No file prerequisite on purpose: the lock's hash is in the path, and a fresh clone's newer
# file times must not rebuild a virtualenv that is already complete.
$(LLAMA_WHEEL):
	@echo "==> compiling llama-cpp-python $(LLAMA_VERSION) once into $(WHEELS) (takes a while)"
	rm -rf $(WHEELS) && mkdir -p $(WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PYTHON) -m pip wheel \
		--no-cache-dir --no-deps -w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	touch $(LLAMA_WHEEL)

$(BASE_READY): $(LLAMA_WHEEL)
	@echo "==> creating $(BASE_VENV) from requirements.lock (first time only; torch is large)"
	rm -rf $(BASE_VENV)
	$(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/pip install --quiet --upgrade pip==26.3
	$(BASE_VENV)/bin/pip install --progress-bar on --find-links $(WHEELS) \
		--only-binary llama-cpp-python -r requirements.lock
	touch $(BASE_READY)

$(INSTALLED): $(BASE_READY) pyproject.toml
	@echo "==> this clone's own $(VENV), layered on $(BASE_VENV)"
	rm -rf $(VENV)
	$(PYTHON) -m venv --without-pip $(VENV)
	$(BASE_VENV)/bin/python -c 'import sysconfig; print("import site; site.addsitedir(%r)" \
		% sysconfig.get_path("purelib"))' \
		> "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/llmops-base.pth"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-build-isolation -e .
	mkdir -p .llmops && rm -f .llmops/.installed-* && touch $(INSTALLED)

# The S3-compatible server the S3 tests talk to: SeaweedFS (Apache-2.0; MinIO is AGPL), built
# once from the Go module proxy into the cache, keyed by its version. `go install` refuses this
# module (its go.mod has replace directives), so it is built in the downloaded module's folder.
WEED_VERSION := v0.0.0-20261109003541-7506e5f91cd6
WEED := $(LLMOPS_CACHE)/bin/weed-$(WEED_VERSION)
GO_ENV := GOPATH=$(LLMOPS_CACHE)/go GOCACHE=$(LLMOPS_CACHE)/go/build GOFLAGS=-modcacherw
export LLMOPS_WEED := $(WEED)

$(WEED):
	@command -v go >/dev/null || { echo "the S3 tests need Go (https://go.dev/dl) to build" \
		"SeaweedFS once" >&2; exit 1; }
	@echo "==> building SeaweedFS $(WEED_VERSION) (the S3 server of the tests) once into" \
		"$(WEED) (several minutes)"
	mkdir -p $(dir $(WEED))
	dir=$$($(GO_ENV) go mod download -json github.com/seaweedfs/seaweedfs@$(WEED_VERSION) \
		| sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p') && cd "$$dir" && \
		$(GO_ENV) go build -trimpath -o $(WEED).tmp ./weed
	mv $(WEED).tmp $(WEED)

# helm v4, which the chart's tests run (lint, template), built once from the Go module proxy
# into the cache, keyed by its version.
HELM_VERSION := v4.3.2
HELM := $(LLMOPS_CACHE)/bin/helm-$(HELM_VERSION)
export LLMOPS_HELM := $(HELM)

$(HELM):
	@command -v go >/dev/null || { echo "the chart's tests need Go (https://go.dev/dl) to build" \
		"helm once" >&2; exit 1; }
	@echo "==> building helm $(HELM_VERSION) (the chart's tests run it) once into $(HELM)" \
		"(about two minutes)"
	mkdir -p $(dir $(HELM)) $(LLMOPS_CACHE)/go/helm-bin
	$(GO_ENV) GOBIN=$(LLMOPS_CACHE)/go/helm-bin go install -trimpath \
		helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(LLMOPS_CACHE)/go/helm-bin/helm $(HELM)

# Jaeger v2 (an OpenTelemetry Collector), the OTLP receiver the tests read spans back from:
# built once from the Go module proxy (in its own module, whose replace directives
# `go install` refuses).
JAEGER_VERSION := v1.75.0
JAEGER := $(LLMOPS_CACHE)/bin/jaeger-$(JAEGER_VERSION)
export LLMOPS_JAEGER := $(JAEGER)

$(JAEGER):
	@command -v go >/dev/null || { echo "the OpenTelemetry tests need Go (https://go.dev/dl)" \
		"to build Jaeger once" >&2; exit 1; }
	@echo "==> building Jaeger $(JAEGER_VERSION) (the OTLP receiver of the tests) once into" \
		"$(JAEGER) (several minutes)"
	mkdir -p $(dir $(JAEGER))
	dir=$$($(GO_ENV) go mod download -json github.com/jaegertracing/jaeger@$(JAEGER_VERSION) \
		| sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p') && cd "$$dir" && \
		$(GO_ENV) go build -trimpath -o $(JAEGER).tmp ./cmd/jaeger
	mv $(JAEGER).tmp $(JAEGER)

# The official AsyncAPI parser (npm, pinned by its lock), which the tests run on the document
# `llmops schemas export` writes; installed once per lock into the cache.
ASYNCAPI_LOCK := $(shell sha256sum infra/asyncapi/package-lock.json | cut -c1-12)
ASYNCAPI := $(LLMOPS_CACHE)/npm/asyncapi-$(ASYNCAPI_LOCK)
export LLMOPS_ASYNCAPI := $(ASYNCAPI)

$(ASYNCAPI)/.complete:
	@command -v npm >/dev/null || { echo "the AsyncAPI test needs Node.js and npm" \
		"(https://nodejs.org) to install the parser once" >&2; exit 1; }
	@echo "==> installing @asyncapi/parser (infra/asyncapi/package-lock.json) once into $(ASYNCAPI)"
	rm -rf $(ASYNCAPI) && mkdir -p $(ASYNCAPI)
	cp infra/asyncapi/package.json infra/asyncapi/package-lock.json $(ASYNCAPI)/
	npm ci --prefix $(ASYNCAPI) --no-audit --no-fund --silent
	touch $@

# What `make run` needs from Debian: Tesseract, to read the sample PDF's scanned page.
RUN_TOOLS := /usr/bin/tesseract /usr/share/tesseract-ocr/5/tessdata/eng.traineddata
RUN_PACKAGES := tesseract-ocr tesseract-ocr-eng

run-tools:
	@for t in $(RUN_TOOLS); do [ -e $$t ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "OCR needs Debian's $(RUN_PACKAGES) (apt-get install $(RUN_PACKAGES) as" \
				"root); without them scanned pages are dead-lettered (ConverterMissing)" >&2; \
		else \
			echo "==> installing Debian's $(RUN_PACKAGES) for OCR"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				$(RUN_PACKAGES) >/dev/null; \
		fi; \
	fi

test-tools:
	@for t in $(TEST_TOOLS); do [ -e $$t ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "the tests need Debian's $(TEST_PACKAGES); install them as root:" >&2; \
			echo "  apt-get install $(TEST_PACKAGES)" >&2; exit 1; \
		fi; \
		echo "==> installing Debian's $(TEST_PACKAGES) for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			$(TEST_PACKAGES) >/dev/null; \
	fi

install: $(INSTALLED) ## Install what is missing (cached virtualenv, the project, Kafka jars)
	@$(BIN)/python -c "from shared.kafka.broker import broker_classpath; from shared.settings import PlatformSettings as P; broker_classpath(P().cache_dir)"
	@$(BIN)/llmops models fetch >/dev/null

# Kafka Connect at the broker's version and the Debezium PostgreSQL connector, from Maven
# Central into ~/.m2 and the cache folder (infra/kafka/connect/*.xml), once.
connect-jars: install
	@$(BIN)/python -c "from shared.kafka.connect import connect_classpath, plugin_path, jars_present; \
		from shared.settings import PlatformSettings as P; c = P().cache_dir; \
		jars_present(c) or print('==> fetching Kafka Connect and the Debezium PostgreSQL connector with Maven'); \
		connect_classpath(c); plugin_path(c)"

run: install run-tools ## Start the broker and every service (llmops dev), index the sample corpus, serve the API
	$(BIN)/llmops dev README.md docs

test: install test-tools connect-jars $(WEED) $(HELM) $(JAEGER) $(ASYNCAPI)/.complete ## Run every test: unit, then integration and e2e on a real broker started for them
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider -m "not open_defect and not long_running" tests

chaos: install ## The chaos suite: bad-input corpus, schema fuzzing, killed broker and services
	$(BIN)/python -m pytest -q -p no:cacheprovider -m chaos tests

test-unit: install $(ASYNCAPI)/.complete ## Run only the unit tests (no broker)
	$(BIN)/python -m pytest -q tests/unit

test-integration: install $(WEED) $(HELM) $(JAEGER) ## Run only the integration tests (real broker)
	$(BIN)/python -m pytest -q tests/integration

lint: install ## ruff (lint, format), mypy --strict on shared/ and services/, the import contracts
	$(BASE_VENV)/bin/ruff check .
	$(BASE_VENV)/bin/ruff format --check .
	$(BIN)/python -m mypy shared services
	$(BASE_VENV)/bin/lint-imports

bench: install test-tools connect-jars $(JAEGER) ## Run the benchmarks in bench/ (they print ratios)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/html_text.py
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/answers.py
	$(BIN)/python bench/feedback.py
	$(BIN)/python bench/monitoring.py
	$(BIN)/python bench/documents.py
	$(BIN)/python bench/converters.py
	$(BIN)/python bench/cluster.py
	$(BIN)/python bench/otel.py
	$(BIN)/python bench/cdc.py

kafka-start: install ## Start the local broker in the background
	$(BIN)/llmops kafka start

kafka-stop: install ## Stop the local broker
	$(BIN)/llmops kafka stop

up: ## docker compose up (one container per service, a three-node Kafka cluster, Qdrant)
	docker compose up -d --build

down: ## docker compose down
	docker compose down

clean: ## Remove this clone's run-time state and .venv; the shared caches stay
	-$(BIN)/llmops kafka stop
	rm -rf .llmops .venv
