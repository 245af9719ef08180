# prunerob: two commands (see README.md)
#   make book   set up, run the default study profile (skipping finished stages), build the book
#   make test   set up, lint (ruff, mypy), run every test (fast, slow and browser) that needs no GPU
# Other targets: make study [PROFILE=name], make book-only (the book from the committed tables, no
# sweep: what CI builds), make venv, make system-deps, make clean-book.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
# two local workers, one core each: the cpu profile's stages are small, so this beats one worker on two cores
WORKERS ?= 2
# tcmalloc doubles small-model training and attack speed on CPU; used when installed.
TCMALLOC := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4))
RUN := LD_PRELOAD=$(TCMALLOC) PYTHONUNBUFFERED=1

.PHONY: book book-only study test lint venv system-deps clean-book

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Debian packages: Chromium for the browser tests, tcmalloc for speed. Installed when missing and
# we are root with apt-get; otherwise the command says what to install.
system-deps:
	@missing=""; [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -n "$(TCMALLOC)" ] || missing="$$missing libtcmalloc-minimal4"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install the Debian packages:$$missing"; fi; fi

study: venv system-deps
	$(RUN) $(PY) -m prunerob sweep --profile $(PROFILE) --workers $(WORKERS)

book: study book-only

book-only: venv system-deps
	$(VENV)/bin/jupyter-book build -W -n --keep-going .
	@echo "the book is in _build/html/index.html"

clean-book:
	$(VENV)/bin/jupyter-book clean .

lint: venv
	$(VENV)/bin/ruff check prunerob tests
	$(VENV)/bin/ruff format --check prunerob tests
	$(PY) -m mypy prunerob

test: venv system-deps lint
	$(RUN) $(PY) -m pytest -m "not gpu" -ra --durations=30
