# The two commands a fresh machine needs: `make run` and `make test`.
.PHONY: install run test unit lint bench-turn

install:
	@bash scripts/install.sh

run: install
	.venv/bin/salesboost up

test: install
	.venv/bin/python -m pytest -ra --durations=15

unit: install
	.venv/bin/python -m pytest -ra tests/unit

lint: install
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/hadolint Dockerfile && .venv/bin/mypy && .venv/bin/lint-imports

bench-turn: install
	.venv/bin/salesboost bench turn --json bench-results/turn.json
