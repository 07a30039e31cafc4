# Thin wrapper over CMake: `make run`, `make test`, `make test-ft`, `make install`, `make deb`,
# `make bench`.
BUILD ?= build
PYTHON_CONFIG ?= /usr/bin/python3-config
# The interpreter beside the -config script (python3.14t-config -> python3.14t).
PYTHON ?= $(patsubst %-config,%,$(PYTHON_CONFIG))
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
DESTDIR ?=
# CMake's nested makes would print every directory they enter and leave.
MAKEFLAGS += --no-print-directory
# The programs and library (what `run`, `install` and `deb` need), without the tests.
PRODUCT = snakepit snakepit-cli snakepit-worker quickstart

.PHONY: all deps deps-build deps-bench configure build build-product run test test-ft install \
	deb bench soak clean format tidy
# Where `make test-ft` builds: its own folder, so both builds live side by side.
FT_BUILD ?= build-ft

all: build

# Each command installs the Debian packages it needs and no more: `run` and
# `install` the build set, `test` also the test set (cmocka, pytest, Chromium...).
deps:
	@scripts/install-deps.sh test
deps-build:
	@scripts/install-deps.sh build
deps-bench:
	@scripts/install-deps.sh bench

# Re-run every time (cheap), so tests appear once their packages are installed.
# The build folder remembers the arguments it was configured with; other ones
# (another Python, other CMAKE_FLAGS) re-configure it from scratch, so no cached
# setting of the previous configuration survives.
CONFIGURE_ARGS = -DPYTHON_CONFIG=$(PYTHON_CONFIG) -DPYTHON=$(PYTHON) $(CMAKE_FLAGS)
configure:
	@mkdir -p $(BUILD)
	@if echo '$(CONFIGURE_ARGS)' | cmp -s - $(BUILD)/configure-args; then \
		cmake -S . -B $(BUILD) --log-level=NOTICE $(CONFIGURE_ARGS); \
	else \
		cmake --fresh -S . -B $(BUILD) --log-level=NOTICE $(CONFIGURE_ARGS) && \
		echo '$(CONFIGURE_ARGS)' > $(BUILD)/configure-args; \
	fi

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

# Quiet: the output goes to $(BUILD)/build.log and is shown when the build fails
# (warnings are shown either way).
build-product: deps-build
	@mkdir -p $(BUILD)
	@echo "Building snakepit in $(BUILD)/ (log: $(BUILD)/build.log) ..."
	@{ $(MAKE) -s configure && cmake --build $(BUILD) -j $(JOBS) --target $(PRODUCT); } \
		> $(BUILD)/build.log 2>&1 || { cat $(BUILD)/build.log; exit 1; }
	@grep -A3 "warning:" $(BUILD)/build.log || true

run: build-product
	@$(BUILD)/quickstart

test: build
	cd $(BUILD) && ctest --output-on-failure --no-tests=error --timeout 300 -j 1

# The free-threaded suite: PYTHON_CONFIG must name a free-threaded Python's
# -config script (python3.14t-config). Builds into FT_BUILD and runs the tests
# labelled free-threaded (tests/CMakeLists.txt): integration tests of both
# profiles, the SDK and CLI suites under that Python, pure-Python parallelism.
test-ft: deps
	@$(PYTHON) -c 'import sys, sysconfig; sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)' \
	  || { echo "make test-ft: $(PYTHON) is not a free-threaded Python; set PYTHON_CONFIG to its python3.Xt-config" >&2; exit 2; }
	$(MAKE) build BUILD=$(FT_BUILD)
	cd $(FT_BUILD) && ctest -L free-threaded --output-on-failure --no-tests=error --timeout 300 -j 1

# Header, library (with its SONAME links), pkg-config file, CMake package,
# snakepit, libexec/snakepit/snakepit-worker, the Python SDK, docs, examples.
install: build-product
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"
	@# A library new to a system folder is found once the linker cache knows it.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then \
		ldconfig; fi

# The Debian package (build-deb/snakepit_VERSION_ARCH.deb): prefix /usr, the SDK in
# Debian's dist-packages, dependencies from dpkg-shlibdeps.
DEB_BUILD ?= $(BUILD)-deb
deb: deps-build
	@scripts/install-deps.sh deb
	@cmake -S . -B $(DEB_BUILD) --log-level=NOTICE -DPYTHON_CONFIG=$(PYTHON_CONFIG) \
		-DCMAKE_INSTALL_PREFIX=/usr -DSP_INSTALL_PYTHONDIR=lib/python3/dist-packages \
		-DSP_PC_RELOCATABLE=OFF -DBUILD_TESTING=OFF $(CMAKE_FLAGS)
	@cmake --build $(DEB_BUILD) -j $(JOBS)
	@cd $(DEB_BUILD) && cpack -G DEB >/dev/null
	@ls $(DEB_BUILD)/*.deb

# The free-threaded suite: PYTHON_CONFIG must name a free-threaded Python's
# -config script (python3.14t-config). Builds into FT_BUILD and runs the tests
# labelled free-threaded (tests/CMakeLists.txt): integration tests of both
# profiles, the SDK and CLI suites under that Python, pure-Python parallelism.
test-ft: deps
	@$(PYTHON) -c 'import sys, sysconfig; sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)' \
	  || { echo "make test-ft: $(PYTHON) is not a free-threaded Python; set PYTHON_CONFIG to its python3.Xt-config" >&2; exit 2; }
	$(MAKE) build BUILD=$(FT_BUILD)
	cd $(FT_BUILD) && ctest -L free-threaded --output-on-failure --timeout 300 -j 1

# FT_CONFIG=/path/to/python3.14t-config (or SNAKEPIT_FT_CONFIG) adds pure-Python
# scaling on that free-threaded Python, built into FT_BUILD.
bench: deps-bench build
	$(PYTHON) bench/report.py --build $(BUILD) \
	  $(if $(FT_CONFIG),--ft-config $(FT_CONFIG) --ft-build $(FT_BUILD))
	$(PYTHON) bench/nats_bench.py --build $(BUILD) --out bench/results/nats.md

# HTTP server under legitimate load and abuse (slowloris, churn, hostile
# requests) for SOAK_SECONDS; not part of `make test` (scripts/soak_http.py).
SOAK_SECONDS ?= 180
soak: build
	$(PYTHON) scripts/soak_http.py --bin $(BUILD)/snakepit --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD)

format:
	clang-format -i include/*.h src/*/*.[ch] tests/*/*.c examples/*.c bench/*.c

tidy: build
	clang-tidy -p $(BUILD) src/core/*.c src/cli/*.c

# libFuzzer targets (fuzz/README.md). Built straight from the sources with clang,
# independent of the CMake build; UB is made fatal so the fuzzer stops on it.
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
FUZZ_DIR = $(BUILD)/fuzz
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -Iinclude -Isrc/core

.PHONY: fuzz
fuzz:  ## build the fuzzers with clang and run each for FUZZ_SECONDS (default 30)
	@mkdir -p $(FUZZ_DIR)/corpus-frame $(FUZZ_DIR)/corpus-config $(FUZZ_DIR)/corpus-upload
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_frame.c src/core/protocol.c src/core/buf.c src/core/errors.c \
		-o $(FUZZ_DIR)/fuzz_frame
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_config.c src/core/config.c src/core/config_defaults.c src/core/config_io.c src/core/config_keys.c src/core/config_snakepit.c src/core/config_values.c \
		src/core/buf.c src/core/errors.c -lyaml -o $(FUZZ_DIR)/fuzz_config
	$(FUZZ_CC) $(FUZZ_FLAGS) -Isrc/cli -Isrc/http fuzz/fuzz_upload.c src/http/multipart.c \
		src/cli/npy.c src/core/protocol.c src/core/buf.c src/core/errors.c -o $(FUZZ_DIR)/fuzz_upload
	@# Seeds (protocol version 2): a CALL (read 3 bytes at a time), a PING, an ERROR
	@# and a PONG; the test configs for the loader.
	@printf '\003S\002\002\000\020\000\000\000\001\000\000\000\000\000\000\000\350\003\000\000\004\000\002\000\000\000echo{}' \
		> $(FUZZ_DIR)/corpus-frame/seed-call
	@printf '\000S\002\007\000\010\000\000\000\007\000\000\000\000\000\000\00012345678' \
		> $(FUZZ_DIR)/corpus-frame/seed-ping
	@printf '\000S\002\004\000\005\000\000\000\011\000\000\000\000\000\000\000\001\005bad' \
		> $(FUZZ_DIR)/corpus-frame/seed-error
	@printf '\000S\002\010\000\030\000\000\000\000\000\000\000\000\000\000\000123456780000000000000002' \
		> $(FUZZ_DIR)/corpus-frame/seed-pong
	@# A HOSTCALL: parent 7 calls tool "add" of pool "b" with {}.
	@printf '\000S\002\014\000\030\000\000\000\001\000\000\000\000\000\000\000\007\000\000\000\000\000\000\000\001\000\001\000\003\000\002\000\000\000badd{}' \
		> $(FUZZ_DIR)/corpus-frame/seed-hostcall
	@# An array table: one inline float64[2] named "a".
	@printf '\000S\002\003\001\053\000\000\000\001\000\000\000\000\000\000\000\001\000\000\000\001\000\014\001\002\000\000\000\000\000\000\000\000\000\000\000\020\000\000\000\000\000\000\000\002\000\000\000\000\000\000\000a0123456789abcdef' \
		> $(FUZZ_DIR)/corpus-frame/seed-arrays
	@cp tests/configs/*.yaml $(FUZZ_DIR)/corpus-config/
	@# Upload seeds: a .npy file, and a multipart body with an args part and two .npy parts.
	@$(PYTHON) -c 'import io, numpy as np; d = "$(FUZZ_DIR)/corpus-upload/"; \
		f = io.BytesIO(); np.save(f, np.arange(6.0).reshape(2, 3)); a = f.getvalue(); \
		f = io.BytesIO(); np.save(f, np.asfortranarray(np.ones((2, 2), ">i2"))); b = f.getvalue(); \
		open(d + "seed-npy", "wb").write(a); \
		p = lambda n, x: b"--B\r\nContent-Disposition: form-data; name=\"" + n + b"\"\r\n\r\n" + x + b"\r\n"; \
		open(d + "seed-form", "wb").write(p(b"args", b"{}") + p(b"a", a) + p(b"b", b) + b"--B--\r\n")'
	$(FUZZ_DIR)/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/frame- \
		$(FUZZ_DIR)/corpus-frame
	$(FUZZ_DIR)/fuzz_config -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/config- \
		$(FUZZ_DIR)/corpus-config
	$(FUZZ_DIR)/fuzz_upload -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/upload- \
		$(FUZZ_DIR)/corpus-upload
