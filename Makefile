# The two commands (README): `make run` and `make test`. Each sets up what it needs first.
PYTHON ?= python3
ARGS ?=

.PHONY: run test lint zip

run:
	$(PYTHON) scripts/setup_env.py run
	.venv/bin/python scripts/quickstart.py $(ARGS)

test:
	$(PYTHON) scripts/setup_env.py test
	bash scripts/run_tests.sh

lint:
	.venv/bin/ruff check .

zip:
	$(PYTHON) build_addon.py
