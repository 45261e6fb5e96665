# Koyra: `make run` starts the control plane, `make install` puts it on a server as a Swarm
# stack, `make test` runs every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run install uninstall test unit e2e lint format images bench clean

venv: $(STAMP)

$(STAMP): requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

# run.sh installs the machine's missing packages first (as root), then the venv.
run:
	bash scripts/run.sh

# install.sh: Koyra as its own Swarm stack on this server (restarted by Swarm; README).
install:
	bash scripts/install.sh

# Keeps the volumes and keys; PURGE=1 removes the stack's volumes and secrets too.
uninstall:
	bash scripts/install.sh --uninstall $(if $(PURGE),--purge)

test: venv
	bash scripts/test.sh

unit: venv
	$(BIN)/pytest tests --ignore=tests/e2e

e2e: venv
	bash scripts/test.sh tests/e2e

# mypy imports koyra.settings (django-stubs reads the models from Django itself); the settings
# import without SECRET_KEY or KOYRA_FERNET_KEYS, which only the system checks require.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every script runs (Redis and the engine started first); each exits non-zero when its target
# is missed, listed at the end.
bench: venv
	bash scripts/bench.sh

images: venv
	$(BIN)/python manage.py build_local_images

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
