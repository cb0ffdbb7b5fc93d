# make run    -- install (CPU) and run the default comparison on the embedded tiny world
# make test   -- the test suite (the command CI runs)
PYTHON ?= python

.PHONY: setup run test test-slow check

setup:
	$(PYTHON) -m pip install -e '.[dev]'
	$(PYTHON) -m pip install --no-deps -r requirements-nodeps.txt

run: setup
	$(PYTHON) -m harness.run --methods ppo rlp_spg

test:
	$(PYTHON) -m pytest -q

test-slow:
	$(PYTHON) -m pytest -q -m slow

check:
	$(PYTHON) -m harness.check --preset tiny
