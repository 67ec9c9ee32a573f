# The recommender stack: `make up`, `make down`, `make test`. Run `make help` for the rest.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
RUN := .run
# Bind addresses. The gateway is the one process meant to be reached from other machines (GATEWAY_HOST=0.0.0.0: every
# interface). The tracking server (no sign-in unless MLFLOW_AUTH=true, and whoever can move `champion` chooses the
# code the scoring servers run) and the scoring servers (no API key) stay on loopback unless set on their own.
GATEWAY_HOST ?= 127.0.0.1
MLFLOW_HOST ?= 127.0.0.1
SERVE_HOST ?= 127.0.0.1
ifeq ($(origin HOST),command line)
  $(error HOST is gone: GATEWAY_HOST binds the gateway; MLFLOW_HOST and SERVE_HOST, the tracking and scoring servers)
endif
MLFLOW_PORT ?= 5000
SERVE_PORT ?= 5001
GATEWAY_PORT ?= 8000
# The tracking server's stores: runs and the registry in MLFLOW_BACKEND_STORE_URI (sqlite here; a team's PostgreSQL:
# postgresql://USER@HOST:5432/DATABASE), model files under MLFLOW_ARTIFACTS_DESTINATION (a folder, or an object store
# such as s3://BUCKET/PATH), which the server proxies: no other process needs storage credentials. Both reach
# `mlflow server` through its environment, never a command line; keep the database password out of the URI too
# (libpq reads PGPASSWORD or ~/.pgpass). docs/serving.md: "A team's tracking server on PostgreSQL".
MLFLOW_BACKEND_STORE_URI ?= sqlite:///mlflow.db
MLFLOW_ARTIFACTS_DESTINATION ?= ./mlartifacts
# MLFLOW_AUTH=true: the tracking server runs MLflow's basic-auth app. Every process of the stack (the pipelines, the
# gateway's request log, its supervisor) signs in with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, which
# MLflow's client reads from the environment; on its first start the tracking server creates that user as its admin.
# Users are kept in basic_auth.db here, unless MLFLOW_AUTH_CONFIG_PATH names a basic_auth.ini of your own.
MLFLOW_AUTH ?= false
ifeq ($(filter true false,$(MLFLOW_AUTH)),)
  $(error MLFLOW_AUTH is true or false, not "$(MLFLOW_AUTH)")
endif
MODEL_NAME ?= movie-recommender
BUILD_EXPERIMENT ?= movie-recommender-builds
# The event store of impressions and feedback (the gateway writes it; `make report` reads it): a SQLite file here, or
# a team's PostgreSQL (postgresql://USER@HOST:5432/DATABASE, the password in PGPASSWORD or ~/.pgpass).
EVENTS_URI ?= sqlite:///$(CURDIR)/$(RUN)/events.db
# Where `make learn-demo` and `make learn-online` import MovieLens-100k likes (apart from the gateway's own events).
LEARN_EVENTS ?= sqlite:///$(CURDIR)/$(RUN)/learn-demo.db
ONLINE_EVENTS ?= sqlite:///$(CURDIR)/$(RUN)/learn-online.db
CUTOFF ?= 0.5
TRACKING_URI := http://$(MLFLOW_HOST):$(MLFLOW_PORT)
GATEWAY_URL := http://$(GATEWAY_HOST):$(GATEWAY_PORT)
RECBOLE_VERSION := 1.2.1

# `mlflow models serve` execs uvicorn through bash: the venv's bin/ must be on PATH.
export PATH := $(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

# Background processes (a session each, PID file and log in $(RUN)/, stopped as a whole process group) are started,
# waited for and stopped by supervisor/processes.py, as the gateway's supervisor and the tests do.
PROCESS := $(BIN)/python -m supervisor.processes

.PHONY: help venv up down build evaluate promote report simulate learn-demo learn-online import-events test test-fast \
  chromium postgresql lint bench docs soak faults

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv and install the pinned requirements (torch first)

$(VENV)/.installed: requirements.txt requirements-dev.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and exactly: this spec takes the local CPU wheel; anything else pulls a multi-GB CUDA build.
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	# MovieLens-100k for `evaluate`, read in place; recbole's own dependencies are huge and unneeded.
	$(BIN)/pip install --disable-pip-version-check -q --no-deps recbole==$(RECBOLE_VERSION)
	touch $@

up: export MLFLOW_BACKEND_STORE_URI := $(MLFLOW_BACKEND_STORE_URI)
up: export MLFLOW_ARTIFACTS_DESTINATION := $(MLFLOW_ARTIFACTS_DESTINATION)
up: venv ## start MLflow, build the model if there is no champion, serve it, start the gateway
	(  # the stores and the auth settings reach the tracking server only (exported, never on a command line)
	  app=()
	  if [[ "$(MLFLOW_AUTH)" == true ]]; then
	    : "$${MLFLOW_TRACKING_USERNAME:?MLFLOW_AUTH=true: export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD}"
	    : "$${MLFLOW_TRACKING_PASSWORD:?MLFLOW_AUTH=true: export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD}"
	    # the admin is created on the first start only; the key signs the forms of MLflow's user pages
	    export MLFLOW_AUTH_ADMIN_USERNAME="$$MLFLOW_TRACKING_USERNAME" MLFLOW_AUTH_ADMIN_PASSWORD="$$MLFLOW_TRACKING_PASSWORD"
	    export MLFLOW_FLASK_SERVER_SECRET_KEY="$${MLFLOW_FLASK_SERVER_SECRET_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(32))')}"
	    app=(--app-name basic-auth)
	  fi
	  $(PROCESS) start mlflow $(RUN) -- $(BIN)/mlflow server --host $(MLFLOW_HOST) --port $(MLFLOW_PORT) --workers 1 "$${app[@]}"
	)
	unset MLFLOW_BACKEND_STORE_URI MLFLOW_ARTIFACTS_DESTINATION  # everything else finds MLflow by its URI alone
	$(PROCESS) wait mlflow $(RUN) $(TRACKING_URI)/health
	export MLFLOW_TRACKING_URI=$(TRACKING_URI)
	status=0; version=$$($(BIN)/python -m pipelines.registry champion --model-name $(MODEL_NAME)) || status=$$?
	if [[ $$status -eq 1 ]]; then
	  echo "no $(MODEL_NAME)@champion yet: building, evaluating and promoting it (a few minutes on CPU)"
	  $(BIN)/mlflow run . -e build --env-manager local --experiment-name $(BUILD_EXPERIMENT) -P model_name=$(MODEL_NAME)
	  $(BIN)/mlflow run . -e evaluate --env-manager local --experiment-name $(BUILD_EXPERIMENT) \
	    -P model_uri=models:/$(MODEL_NAME)@challenger
	  $(BIN)/mlflow run . -e promote --env-manager local --experiment-name $(BUILD_EXPERIMENT) -P model_name=$(MODEL_NAME)
	  version=$$($(BIN)/python -m pipelines.registry champion --model-name $(MODEL_NAME))
	elif [[ $$status -ne 0 ]]; then
	  echo "cannot ask the registry at $(TRACKING_URI) for $(MODEL_NAME)@champion"; exit 1
	else
	  echo "$(MODEL_NAME)@champion is version $$version: reused, not rebuilt"
	fi
	# The gateway's supervisor starts `mlflow models serve` for the champion (port $(SERVE_PORT)), follows the alias
	# (a promotion switches traffic without failing a request) and restarts a scoring server that dies.
	GATEWAY_HOST=$(GATEWAY_HOST) GATEWAY_PORT=$(GATEWAY_PORT) GATEWAY_TRACKING_URI=$(TRACKING_URI) \
	GATEWAY_MODEL_NAME=$(MODEL_NAME) GATEWAY_SERVE_HOST=$(SERVE_HOST) GATEWAY_SERVE_PORT=$(SERVE_PORT) \
	GATEWAY_STATE_DIR=$(RUN) GATEWAY_EVENTS_URI=$(EVENTS_URI) \
	$(PROCESS) start gateway $(RUN) -- $(BIN)/python -m gateway serve
	$(PROCESS) wait gateway $(RUN) $(GATEWAY_URL)/ready 600
	scoring=$$(curl -fsS $(GATEWAY_URL)/health | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["scoring"]["url"])')
	echo
	echo "  MLflow UI and registry  $(TRACKING_URI)$(if $(filter true,$(MLFLOW_AUTH)),  (basic-auth: sign in as $$MLFLOW_TRACKING_USERNAME))"
	echo "  scoring server          $$scoring/invocations  ($(MODEL_NAME)@champion = version $$version, supervised)"
	echo "  gateway                 $(GATEWAY_URL)  (OpenAPI: $(GATEWAY_URL)/docs)"
	echo
	echo "  try:  curl -s -X POST $(GATEWAY_URL)/movies/recommendations/ -H 'content-type: application/json' -d '{\"title\": \"The Matrix\", \"top_n\": 5}'"
	echo "  stop: make down"

down: venv ## stop what `make up` started (by PID file)
	$(PROCESS) stop gateway $(RUN)  # stops the scoring servers it supervises
	for file in $(RUN)/scoring-*.pid; do  # left only if the gateway was killed outright
	  [[ -f $$file ]] && $(PROCESS) stop $$(basename $$file .pid) $(RUN)
	done
	$(PROCESS) stop mlflow $(RUN)

build: venv ## build and register a new version (challenger) on the running tracking server
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e build --env-manager local \
	  --experiment-name $(BUILD_EXPERIMENT) -P model_name=$(MODEL_NAME)

evaluate: venv ## evaluate MODEL_URI (default: the challenger) on MovieLens-100k against the baselines
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e evaluate --env-manager local \
	  --experiment-name $(BUILD_EXPERIMENT) -P model_uri=$(or $(MODEL_URI),models:/$(MODEL_NAME)@challenger)

promote: venv ## point champion at VERSION (default: the challenger), gated on evaluation (ONLINE=true: and on the report); FORCE=true overrides
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e promote --env-manager local \
	  --experiment-name $(BUILD_EXPERIMENT) -P model_name=$(MODEL_NAME) -P version=$(VERSION) -P force=$(or $(FORCE),false) \
	  -P online=$(or $(ONLINE),false)

report: venv ## online metrics per model version from the event store (SINCE=24h, UNTIL=...; tags each version)
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e report --env-manager local \
	  --experiment-name movie-recommender-online -P events_uri=$(EVENTS_URI) -P since=$(SINCE) -P until=$(UNTIL) \
	  -P model_name=$(MODEL_NAME)

simulate: venv ## MovieLens users of the validation half through the running gateway (SESSIONS=N: at most N; ASSIGN=request)
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e simulate --env-manager local \
	  --experiment-name movie-recommender-online -P gateway_url=$(GATEWAY_URL) -P max_sessions=$(or $(SESSIONS),0) \
	  -P assign=$(or $(ASSIGN),user)

learn-demo: venv ## MovieLens-100k likes, each user's last held out, imported; the hybrid built from them, evaluated, promoted
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT
	$(BIN)/python -m pipelines.movielens export "$$tmp/likes.parquet"
	$(MAKE) --no-print-directory import-events FILE="$$tmp/likes.parquet" EVENTS_URI=$(LEARN_EVENTS)
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e build --env-manager local \
	  --experiment-name $(BUILD_EXPERIMENT) -P model_name=$(MODEL_NAME) -P events=$(LEARN_EVENTS)
	$(MAKE) --no-print-directory evaluate
	$(MAKE) --no-print-directory promote

learn-online: venv ## a hybrid challenger from the likes before the simulator's CUTOFF (then: canary, simulate, report)
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT
	until=$$($(BIN)/python -m pipelines.movielens export "$$tmp/likes.parquet" --until $(CUTOFF))
	$(MAKE) --no-print-directory import-events FILE="$$tmp/likes.parquet" EVENTS_URI=$(ONLINE_EVENTS)
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e build --env-manager local \
	  --experiment-name $(BUILD_EXPERIMENT) -P model_name=$(MODEL_NAME) -P events=$(ONLINE_EVENTS) \
	  -P events_until="$$until"
	$(MAKE) --no-print-directory evaluate

import-events: venv ## past interactions from FILE (CSV or Parquet) into EVENTS_URI's store
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e import_events --env-manager local \
	  --experiment-name movie-recommender-imports -P path="$(abspath $(FILE))" -P events=$(EVENTS_URI)

bench: venv ## benchmarks against the running stack (after `make up`); figures in benchmarks/results/
	export MLFLOW_TRACKING_URI=$(TRACKING_URI)
	$(BIN)/python -m benchmarks.inprocess
	$(BIN)/python -m benchmarks.serving --gateway-port $(GATEWAY_PORT)
	$(BIN)/python -m benchmarks.upstream_clients --gateway-port $(GATEWAY_PORT)
	$(BIN)/python -m benchmarks.request_log --tracking-uri $(TRACKING_URI)
	$(BIN)/python -m benchmarks.events
	$(BIN)/python -m benchmarks.history
	$(BIN)/python -m benchmarks.events_serving --gateway-port $(GATEWAY_PORT)
	$(BIN)/python -m benchmarks.build
	$(BIN)/python -m benchmarks.ann
	$(BIN)/python -m benchmarks.scale
	$(BIN)/python -m benchmarks.title_search
	$(BIN)/python -m benchmarks.engagement
	$(BIN)/python -m benchmarks.quality

docs: venv ## regenerate the figures in docs/ from benchmarks/results/reference/
	$(BIN)/python -m benchmarks.report

soak: venv ## 20,000 requests at concurrency 32 through the running gateway; audits the request log in MLflow
	$(BIN)/python -m benchmarks.soak --gateway-port $(GATEWAY_PORT) --tracking-uri $(TRACKING_URI)

faults: venv ## promotion, rollback and a killed scoring server under load (TO=a version other than the champion)
	@test -n "$(TO)" || { echo "make faults TO=VERSION: a registered version other than the champion (make build registers one)"; exit 2; }
	$(BIN)/python -m benchmarks.faults --to $(TO) --gateway-port $(GATEWAY_PORT) --tracking-uri $(TRACKING_URI) \
	  --model-name $(MODEL_NAME) --state-dir $(RUN)

test: venv chromium postgresql lint ## lint, then every test, integration included (what CI runs)
	$(BIN)/python -m pytest

# The page's tests drive Debian's Chromium (Playwright's own browser download cannot work here). Installed when
# missing and run as root, as CI is; otherwise those tests fail, saying what to install.
chromium:
	command -v chromium > /dev/null && exit 0
	if [[ $$(id -u) -ne 0 ]]; then echo "Chromium is missing: the page's tests will fail (as root: apt-get install chromium)"; exit 0; fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends chromium fonts-liberation \
	  || { apt-get update -q && apt-get install -y -q --no-install-recommends chromium fonts-liberation; }

# The tracking server's tests on PostgreSQL start a throwaway cluster with initdb and pg_ctl (Debian's `postgresql`,
# which puts them in /usr/lib/postgresql/*/bin). Installed when missing and run as root, as CI is; otherwise those
# tests fail, saying what to install.
postgresql:
	command -v initdb > /dev/null && exit 0
	compgen -G '/usr/lib/postgresql/*/bin/initdb' > /dev/null && exit 0
	if [[ $$(id -u) -ne 0 ]]; then echo "PostgreSQL is missing: its tests will fail (as root: apt-get install postgresql)"; exit 0; fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends postgresql \
	  || { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql; }

test-fast: venv ## the tests that start no process and no `mlflow run` (while editing)
	$(BIN)/python -m pytest -m "not integration and not slow" -n 2 --dist loadscope

lint: venv ## ruff, and docs/ figures against the reference results
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m benchmarks.report --check
