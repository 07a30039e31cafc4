# Thin wrapper over CMake: `make run`, `make test`, `make bench`.
BUILD ?= build
PYTHON_CONFIG ?= /usr/bin/python3-config
PYTHON ?= /usr/bin/python3
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps deps-bench build run test bench soak clean format tidy

all: build

# The build configures the tests too, so it needs the test packages (cmocka).
deps:
	@scripts/install-deps.sh test
deps-bench:
	@scripts/install-deps.sh bench

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DPYTHON_CONFIG=$(PYTHON_CONFIG) -DPYTHON=$(PYTHON) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/quickstart

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 300 -j 1

bench: deps-bench build
	$(PYTHON) bench/report.py --build $(BUILD)

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
	@mkdir -p $(FUZZ_DIR)/corpus-frame $(FUZZ_DIR)/corpus-config
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_frame.c src/core/protocol.c src/core/buf.c src/core/errors.c \
		-o $(FUZZ_DIR)/fuzz_frame
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_config.c src/core/config.c src/core/config_values.c \
		src/core/buf.c src/core/errors.c -lyaml -o $(FUZZ_DIR)/fuzz_config
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
	@cp tests/configs/*.yaml $(FUZZ_DIR)/corpus-config/
	$(FUZZ_DIR)/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/frame- \
		$(FUZZ_DIR)/corpus-frame
	$(FUZZ_DIR)/fuzz_config -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/config- \
		$(FUZZ_DIR)/corpus-config
