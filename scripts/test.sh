#!/usr/bin/env bash
# Fresh machine -> test run: Debian's redis-server and postgresql, a venv with
# the CPU build of torch, the test extras and both integration packages, then
# lint, type check and pytest (core and integrations).
# The tests start their own servers on free loopback ports and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server postgresql >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0          # CPU build; install before sentence-transformers
.venv/bin/pip install -q -e '.[test]' -e integrations/langchain -e integrations/llamaindex

.venv/bin/ruff check lshrs tests benchmarks examples integrations
.venv/bin/mypy lshrs integrations/langchain/langchain_lshrs integrations/llamaindex/llama_index
.venv/bin/python -m pytest -q "$@"
