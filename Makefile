# make run    -- install (CPU) and run the default comparison on the embedded tiny world
# make test   -- the test suite (the command CI runs)
PYTHON ?= python

.PHONY: setup run test test-slow check leaderboard example-report

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

# The stored reference of harness.check: every method, two seeds (--overwrite: this target's own dir, replaced).
leaderboard:
	$(PYTHON) -m harness.run --methods all --seeds 2 --out runs/leaderboard-tiny --overwrite --update-leaderboard

# The committed example report (reports/tiny/): the report of the leaderboard run above.
example-report: leaderboard
	rm -rf reports/tiny && mkdir -p reports/tiny
	cp -r runs/leaderboard-tiny/report.md runs/leaderboard-tiny/report.html runs/leaderboard-tiny/plots reports/tiny/
