# django-gptimage developer commands. Needs only Python 3.11+ (and make).
#
#   make demo                  the example project on http://127.0.0.1:8000/admin/ (PORT=8001 to move it)
#   make test                  the whole test suite (SQLite + embedded Redis unless DATABASE_URL/REDIS_URL)
#   make lint                  ruff check + ruff format --check
#   make typecheck             mypy + django-stubs over django_gptimage/ (strict on domain/)
#   make docs                  build the documentation site into site/ (strict: warnings are errors)
#   make docs-serve            serve it on http://127.0.0.1:8008/ while you edit docs/
#   make screenshots           retake docs/images/screenshots/ with the browser tests (needs chromium)
#   make messages              update django_gptimage/locale/*/django.po from the code (needs GNU gettext)
#   make compilemessages       compile them into the django.mo files that are committed
#
# Each target creates its virtualenv on first use and reinstalls `-e .[test]` only when
# pyproject.toml changes. Another interpreter needs its own virtualenv:
#
#   make test PYTHON=python3.13 VENV=.venv-313
#   make test PYTEST_ARGS="tests/test_sizes.py -x -q"

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
PIP_FLAGS ?= --disable-pip-version-check --quiet

VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-from-pyproject
DOCS_STAMP := $(VENV)/.installed-docs-from-pyproject
TYPECHECK_STAMP := $(VENV)/.installed-typecheck-from-pyproject
DOCS_PORT ?= 8008

.DEFAULT_GOAL := help
.PHONY: help install test lint typecheck format demo docs docs-serve screenshots messages compilemessages clean

help:
	@echo "make demo     run the example project (admin, RQ worker, embedded Redis) on PORT (default 8000)"
	@echo "make test     run the test suite           PYTEST_ARGS='...'  PYTHON=python3.13 VENV=.venv-313"
	@echo "make lint     ruff check + ruff format --check"
	@echo "make typecheck  mypy + django-stubs over django_gptimage/ (strict on domain/)"
	@echo "make format   ruff format + ruff check --fix"
	@echo "make docs     build the documentation site into site/ (mkdocs --strict)"
	@echo "make docs-serve  serve the documentation on http://127.0.0.1:$(DOCS_PORT)/"
	@echo "make screenshots  retake the documentation's screenshots (the browser tests, docs=...)"
	@echo "make messages  update the translation catalogs (django_gptimage/locale) from the code"
	@echo "make compilemessages  compile the catalogs into the committed .mo files"
	@echo "make install  only create $(VENV) and install -e '.[test]'"
	@echo "make clean    remove $(VENV), the demo database/media/redis and caches"

$(VENV_PYTHON):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "PYTHON=$(PYTHON) is older than 3.11: pass PYTHON=python3.11 (or newer)." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "Could not create $(VENV) (on Debian/Ubuntu: apt install python3-venv)." >&2; exit 1; }

# A virtualenv made by another interpreter than the one asked for is an error, not a surprise.
PYVERSION = import sys; print("%d.%d" % sys.version_info[:2])
define check_venv
	@want="$$($(PYTHON) -c '$(PYVERSION)')"; have="$$($(VENV_PYTHON) -c '$(PYVERSION)')"; \
	if [ "$$want" != "$$have" ]; then \
		echo "$(VENV) uses Python $$have but PYTHON=$(PYTHON) is $$want: pass another VENV=..., or remove $(VENV)." >&2; \
		exit 1; \
	fi
endef

$(STAMP): pyproject.toml | $(VENV_PYTHON)
	$(check_venv)
	$(VENV_PYTHON) -m pip install $(PIP_FLAGS) -e '.[test]'
	@touch $@

install: $(STAMP)

test: $(STAMP)
	$(check_venv)
	$(VENV_PYTHON) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(check_venv)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(check_venv)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

$(TYPECHECK_STAMP): pyproject.toml $(STAMP)
	$(VENV_PYTHON) -m pip install $(PIP_FLAGS) -e '.[test,typecheck]'
	@touch $@

# mypy with django-stubs over django_gptimage/ ([tool.mypy] in pyproject.toml; strict on domain/).
typecheck: $(TYPECHECK_STAMP)
	$(check_venv)
	$(VENV_PYTHON) -m mypy

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(VENV_PYTHON) -m pip install $(PIP_FLAGS) -e '.[test,docs]'
	@touch $@

docs: $(DOCS_STAMP)
	$(check_venv)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --clean

docs-serve: $(DOCS_STAMP)
	$(check_venv)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

# The browser tests' shot(..., docs="name") screenshots, copied to docs/images/screenshots/.
screenshots: $(STAMP)
	$(check_venv)
	GPTIMAGE_DOCS_SCREENSHOTS=1 $(VENV_PYTHON) -m pytest tests/browser -q -p no:cacheprovider

# Run inside the package so its locale/ is the one updated. Domain strings are marked with
# gettext_noop (one of makemessages' xgettext keywords); the loopback server is not translated.
LOCALES ?= de
messages: $(STAMP)
	cd django_gptimage && PYTHONPATH=.. DJANGO_SETTINGS_MODULE=tests.settings ../$(VENV_PYTHON) -m django \
		makemessages $(foreach l,$(LOCALES),-l $(l)) --no-location --ignore 'testing/*'

compilemessages: $(STAMP)
	cd django_gptimage && PYTHONPATH=.. DJANGO_SETTINGS_MODULE=tests.settings ../$(VENV_PYTHON) -m django \
		compilemessages

demo: $(STAMP)
	$(check_venv)
	$(VENV_PYTHON) example_project/run_demo.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
	rm -rf example_project/db.sqlite3 example_project/media example_project/var
