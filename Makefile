# Thin wrapper over CMake: `make run`, `make test`, `make test-ft`, `make bench`.
BUILD ?= build
PYTHON_CONFIG ?= /usr/bin/python3-config
# The interpreter beside the -config script (python3.14t-config -> python3.14t).
PYTHON ?= $(patsubst %-config,%,$(PYTHON_CONFIG))
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# Where `make test-ft` builds: its own folder, so both builds live side by side.
FT_BUILD ?= build-ft

.PHONY: all deps deps-bench build run test test-ft bench clean format tidy FORCE

all: build

# The build configures the tests too, so it needs the test packages (cmocka).
deps:
	@scripts/install-deps.sh test
deps-bench:
	@scripts/install-deps.sh bench

# The build folder remembers the arguments it was configured with; other ones
# (another Python, other CMAKE_FLAGS) re-configure it from scratch, so no cached
# setting of the previous configuration survives.
CONFIGURE_ARGS = -DPYTHON_CONFIG=$(PYTHON_CONFIG) -DPYTHON=$(PYTHON) $(CMAKE_FLAGS)

$(BUILD)/configure-args: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CONFIGURE_ARGS)' | cmp -s - $@ || echo '$(CONFIGURE_ARGS)' > $@

$(BUILD)/CMakeCache.txt: $(BUILD)/configure-args
	cmake --fresh -S . -B $(BUILD) $(CONFIGURE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/quickstart

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 300 -j 1

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
	@mkdir -p $(FUZZ_DIR)/corpus-frame $(FUZZ_DIR)/corpus-config
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_frame.c src/core/protocol.c src/core/errors.c \
		-o $(FUZZ_DIR)/fuzz_frame
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_config.c src/core/config.c src/core/config_values.c \
		src/core/errors.c -lyaml -o $(FUZZ_DIR)/fuzz_config
	@# Seeds: a CALL (read 3 bytes at a time) and a PING; the test configs for the loader.
	@printf '\003S\001\002\000\015\000\000\000\001\000\000\000\000\000\000\000\350\003\000\000\004\000echo{}\n' \
		> $(FUZZ_DIR)/corpus-frame/seed-call
	@printf '\000S\001\007\000\002\000\000\000\007\000\000\000\000\000\000\000hi' \
		> $(FUZZ_DIR)/corpus-frame/seed-ping
	@cp tests/configs/*.yaml $(FUZZ_DIR)/corpus-config/
	$(FUZZ_DIR)/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/frame- \
		$(FUZZ_DIR)/corpus-frame
	$(FUZZ_DIR)/fuzz_config -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/config- \
		$(FUZZ_DIR)/corpus-config
