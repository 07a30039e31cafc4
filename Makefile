# Thin wrapper over CMake: `make run`, `make test`, `make bench`.
BUILD ?= build
PYTHON_CONFIG ?= /usr/bin/python3-config
PYTHON ?= /usr/bin/python3
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build run test bench clean format tidy

all: build

deps:
	@scripts/install-deps.sh test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DPYTHON_CONFIG=$(PYTHON_CONFIG) -DPYTHON=$(PYTHON) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/quickstart

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 300 -j 1

bench: build
	$(BUILD)/bench/bench_capi

clean:
	rm -rf $(BUILD)

format:
	clang-format -i include/*.h src/*/*.[ch] tests/*/*.c examples/*.c bench/*.c

tidy: build
	clang-tidy -p $(BUILD) src/core/*.c src/cli/*.c
