# Two commands do all set-up on a fresh machine:
#   make demo   -> creates .venv if missing, installs, runs the offline demo
#   make test   -> creates .venv if missing, installs (incl. Debian's Fashion-MNIST), runs lint, types and tests
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
FMNIST_DIR = /usr/share/datasets/fashion-mnist
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: venv data demo test lint typecheck fast build-reference-models benchmark clean

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# torchattacks (the tests' and benchmarks' cross-check) pins requests~=2.25.1, hence urllib3<1.27, which no
	@# resolver can square with MLServer's tritonclient (urllib3>=2.0.7). It never imports requests: install it
	@# without its dependencies (torch, torchvision, scipy, numpy and tqdm are already there).
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt torchattacks
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

# Debian's Fashion-MNIST IDX files (the tests use the full dataset; the demo uses the bundled subset), and
# Debian's headless-capable chromium with its chromium-driver (the same version) for the report's browser test
# (tests/browser/, driven by Selenium; nothing is downloaded at test time).
data:
	@test -d $(FMNIST_DIR) || $(SUDO) apt-get install -y -qq dataset-fashion-mnist \
		|| ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist)
	@(command -v chromium && command -v chromedriver) >/dev/null \
		|| $(SUDO) apt-get install -y -qq chromium chromium-driver \
		|| ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver)

demo: venv
	$(BIN)/unlearn-audit demo

lint: venv
	$(BIN)/ruff check unlearn_audit tests reference_models examples benchmarks

typecheck: venv
	$(BIN)/mypy unlearn_audit

test: venv data lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

fast: venv
	$(BIN)/python -m pytest -m "not slow" -x -q $(PYTEST_ARGS)

# Another machine, imitated: the training-dependent tests (`pytest -m training`) and the demo again under other
# CPU kernel sets. Chaotic training rounds differently there, so an assertion that holds only on the machine
# that built the bundle fails here (docs/testing.md). The demo exits 0 only when every verdict is as expected.
KERNEL_SETS ?= default avx2
# Left out here, to keep CI short: the tuned-adversary cases (tests/adversary, 6-14 min a kernel set; their
# helper measured them under default, avx2 and avx512, docs/methodology.md) and test_audit's three demo tests,
# which `unlearn-audit demo` below repeats as a whole (it exits non-zero unless every verdict is as expected).
KERNEL_SKIP ?= --ignore=tests/adversary --deselect tests/integration/test_audit.py::test_four_cases_on_reference_models \
	--deselect tests/integration/test_audit.py::test_demo_writes_reports \
	--deselect tests/integration/test_audit.py::test_demo_closes_the_loop_with_remediation
.PHONY: test-kernels
test-kernels: venv data
	@set -e; for cap in $(KERNEL_SETS); do \
		echo "== ATEN_CPU_CAPABILITY=$$cap: pytest -m training, then the demo"; \
		ATEN_CPU_CAPABILITY=$$cap $(BIN)/python -m pytest -m training -q $(KERNEL_SKIP) $(PYTEST_ARGS); \
		out=$$(mktemp -d); \
		ATEN_CPU_CAPABILITY=$$cap $(BIN)/unlearn-audit demo --out $$out/demo || { rm -rf $$out; exit 1; }; \
		rm -rf $$out; \
	done

build-reference-models: venv data
	$(BIN)/python reference_models/build.py

# Writes docs/performance.md (probe engine vs torchattacks and ART) and docs/performance.json (about 6 minutes on 2 cores).
benchmark: venv
	$(BIN)/python benchmarks/probes.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-output
