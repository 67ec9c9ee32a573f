# The recommender stack: `make up`, `make down`, `make test`. Run `make help` for the rest.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
RUN := .run
HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
SERVE_PORT ?= 5001
GATEWAY_PORT ?= 8000
MODEL_NAME ?= movie-recommender
BUILD_EXPERIMENT ?= movie-recommender-builds
TRACKING_URI := http://$(HOST):$(MLFLOW_PORT)
RECBOLE_VERSION := 1.2.1

# `mlflow models serve` execs uvicorn through bash: the venv's bin/ must be on PATH.
export PATH := $(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

# Shell helpers shared by the recipes: processes are started in their own session (PID = process group id),
# recorded in $(RUN)/NAME.pid, and stopped by signalling that group: nothing else is touched.
define LIB
running() { [[ -f $(RUN)/$$1.pid ]] && kill -0 "$$(cat $(RUN)/$$1.pid)" 2>/dev/null; }
start() {
  local name=$$1; shift
  if running "$$name"; then echo "$$name: already running (pid $$(cat $(RUN)/$$name.pid)), reused"; return; fi
  setsid "$$@" > $(RUN)/$$name.log 2>&1 < /dev/null &
  echo $$! > $(RUN)/$$name.pid
  echo "$$name: started (pid $$!, log $(RUN)/$$name.log)"
}
wait_http() {
  local name=$$1 url=$$2 tries=$${3:-180}
  for ((i = 0; i < tries; i++)); do
    curl -fsS -o /dev/null "$$url" 2>/dev/null && return 0
    if ! running "$$name"; then echo "$$name exited; end of $(RUN)/$$name.log:"; tail -n 30 $(RUN)/$$name.log; return 1; fi
    sleep 1
  done
  echo "$$name did not answer $$url in $$tries s; end of $(RUN)/$$name.log:"; tail -n 30 $(RUN)/$$name.log; return 1
}
stop() {
  local name=$$1 pid
  if ! running "$$name"; then rm -f $(RUN)/$$name.pid; echo "$$name: not running"; return; fi
  pid=$$(cat $(RUN)/$$name.pid)
  kill -TERM -- "-$$pid" 2>/dev/null || kill -TERM "$$pid"
  # wait for the whole group: `mlflow models serve` leaves uvicorn as a child of the recorded process
  for ((i = 0; i < 150; i++)); do kill -0 -- "-$$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 -- "-$$pid" 2>/dev/null && kill -KILL -- "-$$pid" 2>/dev/null || true
  rm -f $(RUN)/$$name.pid
  echo "$$name: stopped (pid $$pid)"
}
endef

.PHONY: help venv up down build evaluate promote test test-fast lint bench docs soak faults

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

up: venv ## start MLflow, build the model if there is no champion, serve it, start the gateway
	@$(LIB)
	mkdir -p $(RUN)
	start mlflow $(BIN)/mlflow server --backend-store-uri sqlite:///mlflow.db --artifacts-destination ./mlartifacts \
	  --host $(HOST) --port $(MLFLOW_PORT) --workers 1
	wait_http mlflow $(TRACKING_URI)/health
	export MLFLOW_TRACKING_URI=$(TRACKING_URI)
	status=0; version=$$($(BIN)/python -m pipelines.registry champion --model-name $(MODEL_NAME) 2>/dev/null) || status=$$?
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
	GATEWAY_HOST=$(HOST) GATEWAY_PORT=$(GATEWAY_PORT) GATEWAY_TRACKING_URI=$(TRACKING_URI) \
	GATEWAY_MODEL_NAME=$(MODEL_NAME) GATEWAY_SERVE_HOST=$(HOST) GATEWAY_SERVE_PORT=$(SERVE_PORT) \
	GATEWAY_STATE_DIR=$(RUN) start gateway $(BIN)/python -m gateway serve
	wait_http gateway http://$(HOST):$(GATEWAY_PORT)/ready 600
	scoring=$$(curl -fsS http://$(HOST):$(GATEWAY_PORT)/health | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["scoring"]["url"])')
	echo
	echo "  MLflow UI and registry  $(TRACKING_URI)"
	echo "  scoring server          $$scoring/invocations  ($(MODEL_NAME)@champion = version $$version, supervised)"
	echo "  gateway                 http://$(HOST):$(GATEWAY_PORT)  (OpenAPI: http://$(HOST):$(GATEWAY_PORT)/docs)"
	echo
	echo "  try:  curl -s -X POST $(HOST):$(GATEWAY_PORT)/movies/recommendations/ -H 'content-type: application/json' -d '{\"title\": \"The Matrix\", \"top_n\": 5}'"
	echo "  stop: make down"

down: ## stop what `make up` started (by PID file)
	@$(LIB)
	stop gateway  # stops the scoring servers it supervises
	for file in $(RUN)/scoring-*.pid; do  # left only if the gateway was killed outright
	  [[ -f $$file ]] && name=$$(basename $$file .pid) && stop $$name
	done
	stop mlflow

build: venv ## build and register a new version (challenger) on the running tracking server
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e build --env-manager local \
	  --experiment-name $(BUILD_EXPERIMENT) -P model_name=$(MODEL_NAME)

evaluate: venv ## evaluate MODEL_URI (default: the challenger) on MovieLens-100k against the baselines
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e evaluate --env-manager local \
	  --experiment-name $(BUILD_EXPERIMENT) -P model_uri=$(or $(MODEL_URI),models:/$(MODEL_NAME)@challenger)

promote: venv ## point champion at VERSION (default: the challenger), gated on evaluation; FORCE=true overrides
	MLFLOW_TRACKING_URI=$(TRACKING_URI) $(BIN)/mlflow run . -e promote --env-manager local \
	  --experiment-name $(BUILD_EXPERIMENT) -P model_name=$(MODEL_NAME) -P version=$(VERSION) -P force=$(or $(FORCE),false)

bench: venv ## benchmarks B1-B6 against the running stack (after `make up`); figures in benchmarks/results/
	export MLFLOW_TRACKING_URI=$(TRACKING_URI)
	$(BIN)/python -m benchmarks.inprocess
	$(BIN)/python -m benchmarks.serving --gateway-port $(GATEWAY_PORT)
	$(BIN)/python -m benchmarks.upstream_clients --gateway-port $(GATEWAY_PORT)
	$(BIN)/python -m benchmarks.gateway_cpu --gateway-port $(GATEWAY_PORT)
	$(BIN)/python -m benchmarks.request_log --tracking-uri $(TRACKING_URI)
	$(BIN)/python -m benchmarks.build
	$(BIN)/python -m benchmarks.startup

soak: venv ## 20,000 requests at concurrency 32 through the running gateway; audits the request log in MLflow
	$(BIN)/python -m benchmarks.soak --gateway-port $(GATEWAY_PORT) --tracking-uri $(TRACKING_URI)

faults: venv ## promotion, rollback and a killed scoring server under load (TO=a version other than the champion)
	@test -n "$(TO)" || { echo "make faults TO=VERSION: a registered version other than the champion (make build registers one)"; exit 2; }
	$(BIN)/python -m benchmarks.faults --to $(TO) --gateway-port $(GATEWAY_PORT) --tracking-uri $(TRACKING_URI) \
	  --model-name $(MODEL_NAME) --state-dir $(RUN)

test: venv ## run every test, integration included (what CI runs)
	$(BIN)/python -m pytest

test-fast: venv ## the tests that start no process and no `mlflow run` (while editing)
	$(BIN)/python -m pytest -m "not integration and not slow"

lint: venv ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
