# memlib: `make book` builds the book at the quick profile; `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.memlib-installed
export PYTHONHASHSEED := 0

.PHONY: book test unit nbval book-smoke data browser bench clean clean-results

# Create the virtual environment and install everything (once; again when pyproject.toml changes).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The torch/torchvision pair this project is tested with; elsewhere fall back to the newest pair.
	$(BIN)/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" || \
	  $(BIN)/python -m pip install --quiet torch torchvision
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (memlib)" >/dev/null
	@touch $(STAMP)

# Offline datasets (Debian's Fashion-MNIST where the machine allows it).
data:
	@tools/get_data.sh

# The book at the default (quick, CPU, offline) profile, into _build/html.  `--all` re-executes every page even
# when its source is unchanged (a change in memlib or in the profile must show); the results store makes that
# cheap: a re-run with nothing changed loads every result instead of training.
# Experiment parts (seeds, arms, windows) run side by side on a private local Ray instance, one single-threaded
# process per core (tools/build_book.py); MEMLIB_EXECUTOR=local runs them in turn in each notebook's kernel.
# tools/build_book.py first imports the result bundles committed in results/ (verified; see results/README.md), so
# the pages show paper-scale runs from a GPU beside the quick ones without training them.
BOOK_EXECUTOR ?= ray
book: $(STAMP) data
	MEMLIB_PROFILE=$${MEMLIB_PROFILE:-quick} MEMLIB_EXECUTOR=$${MEMLIB_EXECUTOR:-$(BOOK_EXECUTOR)} \
	  $(BIN)/python tools/build_book.py . --all --keep-going
	@echo "book: $(CURDIR)/_build/html/index.html"

# Unit tests, every notebook under nbval, and the book at the smoke profile with warnings as errors.
# Then the smoke book opened in headless Chromium (tests/test_browser.py, the `book` tests): every chapter page's
# verdict box, figures, text and executed-notebook link.
# `browser` comes first: without Chromium (and no way to install it) `make test` fails in its first seconds.
SMOKE_HTML := $(CURDIR)/_build/smoke/_build/html
browser:
	@tools/get_browser.sh

# The tests whose numbers depend on what precision="auto" resolves to run a second time with bf16 forced
# ($MEMLIB_PRECISION, which auto obeys), so that the suite passes whatever this CPU's probe chose (slower where bf16
# is slow): the training loop (test_train), the stacked trainer against sequential training
# (test_outliers_multitrain), the gradient probe, pruning, outlier metrics and the store's keys (test_store).
PRECISION_TESTS := tests/test_train.py tests/test_outliers_multitrain.py tests/test_gradient_probe.py \
  tests/test_pruning.py tests/test_outliers.py tests/test_store.py

test: browser $(STAMP)
	@tools/run_pytest.sh $(BIN)/python -m pytest tests -m "not book"
	@MEMLIB_PRECISION=bf16 tools/run_pytest.sh $(BIN)/python -m pytest -p no:cacheprovider $(PRECISION_TESTS)
	@MEMLIB_PROFILE=smoke tools/run_pytest.sh $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider \
	  notebooks summary.ipynb
	MEMLIB_PROFILE=smoke $(BIN)/jupyter-book build . --all -W --keep-going --path-output _build/smoke
	@MEMLIB_BOOK_HTML=$(SMOKE_HTML) tools/run_pytest.sh $(BIN)/python -m pytest tests/test_browser.py -m book
	@echo "all checks passed"

unit: $(STAMP)
	@tools/run_pytest.sh $(BIN)/python -m pytest tests -m "not book"
	@MEMLIB_PRECISION=bf16 tools/run_pytest.sh $(BIN)/python -m pytest -p no:cacheprovider $(PRECISION_TESTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf _build runs

clean-results:
	rm -rf _results
