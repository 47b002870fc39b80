# Claude Code Cluster: `make demo` runs the main job, `make test` runs the tests.
# Both install what they need on a fresh Debian 12 machine and skip it on the next run.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests and `make demo-local` need: private PostgreSQL and Redis servers,
# git for repositories, bubblewrap for the agent's command sandbox, pytest for the repositories
# the local agents work on (they run its tests with the system's python3, as agent hosts do),
# Chromium for the admin pages. tests/test_clean_room.py runs the suite's agent tests on a host
# that has only these, so a package installed by hand cannot hide a missing one here.
# nodejs, golang-go and cargo: the toolchains whose test runners tests/agent/test_repo_tests.py runs
# (Java is read from recorded Maven output: Maven fetches its test plugin from its own central
# repository, which this machine cannot reach).
TEST_DEBS := postgresql redis-server git bubblewrap tinyproxy socat python3-pytest chromium chromium-driver \
	nodejs golang-go cargo make
# Debian packages the lab (systemd-nspawn hosts) needs.
LAB_DEBS := systemd-container debootstrap apt-cacher-ng openssh-client
PYTEST_ARGS ?=

.PHONY: help control setup lab-deps test test-fast test-faults lint demo demo-local demo-stop clean

help:
	@echo "make demo       the main job: lab hosts provisioned by site.yml turn issues into PRs"
	@echo "make demo-stop  stop the demo's lab hosts and simulators"
	@echo "make demo-local the same job as local processes on loopback (quick, no lab hosts)"
	@echo "make test       install what the tests need and run them all (what CI runs)"
	@echo "make control    a control node only: Ansible and what the playbooks need (.venv)"
	@echo "make test-fast  the tests without the slow ones (lab hosts, end to end)"
	@echo "make test-faults  the fault suite on lab hosts (crashes, cuts, restarts; ~25 min)"
	@echo "make lint       ruff, import contracts, ansible-lint, ansible-test sanity"
	@echo "make lab-deps   the Debian packages the lab hosts need"
	@echo "make clean      remove the virtualenv and build files"

# The virtualenv; Debian's Python needs python3-venv for it.
$(BIN)/pip:
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || scripts/ensure-debian-packages.sh python3-venv
	$(PYTHON) -m venv $(VENV)

# The stamps depend on the pyproject files: editing dependencies reinstalls, nothing else does.
# The tests and the demo need the project and its devtools (lab, simulators, demo).
$(BIN)/.installed: pyproject.toml devtools/pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]' -e ./devtools
	@touch $@ $(BIN)/.control-installed

$(BIN)/.control-installed: pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[control]'
	@touch $@

# A control node: Ansible and what the playbooks and modules need, nothing for the tests.
control: $(BIN)/.control-installed
	@echo "control node ready: $(BIN)/ansible-playbook (or: . $(BIN)/activate)"

setup: $(BIN)/.installed
	@scripts/ensure-debian-packages.sh $(TEST_DEBS)

lab-deps:
	@scripts/ensure-debian-packages.sh $(LAB_DEBS)

test: setup lab-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m "not faults" $(PYTEST_ARGS)

# One fault after another on one lab cluster (~25 min); docs/RELIABILITY.md has the figures.
test-faults: setup lab-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m faults -s tests/faults $(PYTEST_ARGS)

test-fast: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint
	$(BIN)/python scripts/ansible-test-sanity

demo: setup lab-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ccc-demo --lab

demo-local: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ccc-demo --local

demo-stop: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ccc-demo stop

clean:
	rm -rf $(VENV) build *.egg-info devtools/*.egg-info .pytest_cache .ruff_cache
