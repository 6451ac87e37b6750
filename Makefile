# Stepdown: `make run` serves the demo on http://127.0.0.1:5000, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := service
export DATABASE_URL ?= sqlite:///$(CURDIR)/instance/stepdown.db
export TOKEN_PRIVATE_KEY_FILE ?= $(CURDIR)/instance/token-key.pem

.PHONY: run install test lint check migrations-check bench frontend clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)

instance/.demo-loaded: $(STAMP)
	mkdir -p instance
	$(BIN)/flask db upgrade
	$(BIN)/flask demo-data
	touch instance/.demo-loaded

run: install instance/.demo-loaded
	$(BIN)/flask db upgrade
	@$(BIN)/flask demo-data | tail -n +1
	@echo "Stepdown on http://127.0.0.1:5000"
	$(BIN)/flask run --host 127.0.0.1 --port 5000

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

migrations-check: install
	rm -f instance/alembic-check.db
	mkdir -p instance
	DATABASE_URL=sqlite:///$(CURDIR)/instance/alembic-check.db $(BIN)/alembic upgrade head
	DATABASE_URL=sqlite:///$(CURDIR)/instance/alembic-check.db $(BIN)/alembic check

check: lint migrations-check test

bench: install
	$(BIN)/python -m bench

frontend:
	bash static/refresh-nhsuk-frontend.sh

clean:
	rm -rf $(VENV) instance .pytest_cache
