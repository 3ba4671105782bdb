# One entry point for people and CI: `make train` runs the seed MNIST convnet, `make test` runs every test,
# `make lint` runs the static checks (clippy, ruff, stubtest). They create .venv, install the Python deps
# and build the Rust extension in release mode first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The shared MNIST files next to the checkout, when present (CI and the team's machines have them).
SHARED_DATA := $(abspath ../shared/data)
export RCONV_DATA ?= $(if $(wildcard $(SHARED_DATA)/mnist),$(SHARED_DATA),)

.PHONY: build train test test-python test-rust lint lint-rust lint-python bench clean

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.7,<2" numpy pytest hypothesis h5py Pillow tensorboardX tensorboard onnx onnxruntime ruff mypy
	touch $@

build: $(VENV)/.deps
	$(VENV)/bin/maturin develop --release --quiet

train: build
	$(PY) examples/mnist_convnet.py

test-rust:
	cargo test --release --quiet
	RCONV_KERNELS=portable cargo test --release --quiet

test-python: build
	$(PY) -m pytest -q
	# The portable paths (GEMM and loops, what CPUs without AVX-512/AVX2 run) against the same float64 references.
	RCONV_KERNELS=portable $(PY) -m pytest -q tests/test_ops_conv.py tests/test_ops_conv_pool.py tests/test_ops_pool.py tests/test_ops_dense_activation.py

# What `make test` (and so CI) gates on: the static checks first (fast), then the Rust and Python tests.
TEST_GATES := lint test-rust test-python
test: $(TEST_GATES)

# Static checks. Python paths are the ones ruff checks; its rules are in pyproject.toml.
LINT_PATHS := python tests benchmarks examples

lint: lint-rust lint-python

lint-rust:
	@cargo clippy --version >/dev/null 2>&1 || { \
		echo "make lint: cargo clippy is not installed (rustup component add clippy)" >&2; exit 1; }
	cargo clippy --release --all-targets --quiet -- -D warnings

# stubtest imports the built extension, so python/rconv/_rconv.pyi is checked against the real bindings.
lint-python: build
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(PY) -m mypy.stubtest rconv._rconv

bench: build
	$(PY) benchmarks/ops.py

clean:
	rm -rf $(VENV) target
