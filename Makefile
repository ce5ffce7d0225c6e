# One entry point for people and CI. `make demo` runs the main job, `make test` runs every check.
# Both set up everything they need on a fresh Debian machine (virtualenv, Python packages, and the
# system packages the real parts need when we are root), so a clean clone needs nothing else.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# What the real parts need, as command:Debian-package pairs. The tests run Prometheus (and promtool),
# Git, Chromium (headless, for the rollout report's page), hey (loadtest's output is checked against
# it side by side), OpenSSH's server and client (the SSH transport and SSH-signed commits are tested
# against a real sshd on loopback), GnuPG (GPG-signed commits), and for `make bench` GNU time
# (tests/bench/startup.py reads each command's CPU and max RSS from it); the demo needs only
# Prometheus and Git.
TEST_NEEDS ?= prometheus:prometheus promtool:prometheus git:git chromium:chromium hey:hey /usr/bin/time:time \
	sshd:openssh-server ssh-keygen:openssh-client gpg:gnupg
DEMO_NEEDS ?= prometheus:prometheus git:git

# Install the Debian packages whose commands are missing; only possible as root with apt-get.
define install_missing
	@missing=""; \
	for pair in $(1); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  { command -v $$cmd || [ -x /usr/sbin/$$cmd ]; } >/dev/null 2>&1 && continue; \
	  case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (install them, e.g. apt-get install$$missing)" >&2; \
	  fi; \
	fi
	@# The Debian package starts a system Prometheus on :9090; our stack starts its own, so stop that one.
	@if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
	@if [ -x /etc/init.d/prometheus ]; then /etc/init.d/prometheus stop >/dev/null 2>&1 || true; fi
endef

.PHONY: all test lint typecheck pytest demo system system-demo venv bench clean

all: test

system:
	$(call install_missing,$(TEST_NEEDS))

system-demo:
	$(call install_missing,$(DEMO_NEEDS))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy analyzer loadtest rollouts grafana

# The suite mostly waits on real time (Prometheus scrapes, analysis windows, Git commit seconds), so
# two workers cut its wall time by about a third on a 2-core machine. Whole files go to one worker
# (--dist loadfile): a module's real processes (Prometheus, the local stack, sshd) start once, as in
# a serial run. Safe in parallel: ports are taken from the kernel, every test has its own temporary
# directory, and no test writes to the work tree. PYTEST_JOBS= (empty) runs serially.
PYTEST_JOBS ?= -n 2 --dist loadfile

pytest: $(STAMP) system
	$(BIN)/python -m pytest $(PYTEST_JOBS) $(PYTEST_ARGS)

test: system $(STAMP)
	$(MAKE) --no-print-directory lint typecheck pytest

demo: system-demo $(STAMP)
	$(BIN)/rollouts demo $(DEMO_ARGS)

bench: system $(STAMP)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
