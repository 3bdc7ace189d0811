# Carillon: the two set-up commands are `make run` and `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BROWSER_STAMP := $(VENV)/.installed-browser
WEB_SOURCES := web/build.sh web/package-lock.json web/src/app.js web/index.html web/style.css

.PHONY: run test lint typecheck unit install install-test clean web test-container

run: $(STAMP) web/dist/app.js
	$(BIN)/carillon serve

test: $(TEST_STAMP) $(BROWSER_STAMP) lint typecheck unit

install: $(STAMP)
install-test: $(TEST_STAMP)

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	sh scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test]'
	touch $@

# The demo page: amazon-chime-sdk-js from the npm registry, bundled with esbuild.
web/dist/app.js: $(WEB_SOURCES)
	sh scripts/install-node.sh
	sh web/build.sh

web: web/dist/app.js

# Browser tests: Debian's Chromium (never a downloaded browser) and the built page.
$(BROWSER_STAMP): scripts/install-browser-deps.sh $(WEB_SOURCES) $(STAMP)
	sh scripts/install-browser-deps.sh
	touch $@

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

unit: $(TEST_STAMP)
	CARILLON_REQUIRE_BROWSER=1 $(BIN)/pytest -q

# The container image, built with podman and driven through its ports (scripts/test-container.sh).
test-container: $(TEST_STAMP)
	bash scripts/test-container.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis web/dist web/node_modules
