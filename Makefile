# The two commands of the README, and a few conveniences. CMake does the real work.
JOBS ?= $(shell nproc)
PRESET ?= release
BUILD_DIR := build
CTEST_ARGS ?=

.PHONY: all setup configure build run test bench baseline clean help

all: build

help:
	@echo "make run    build, then start comfyfarm with simulated backends"
	@echo "make test   install dependencies, build, run every test (CTest)"
	@echo "make bench  build and run the benchmarks"
	@echo "make baseline  build, then record an SLA baseline on a simulated farm (docs/sla.md)"
	@echo "make setup  install the Debian packages comfyfarm needs (idempotent)"

setup:
	./scripts/setup.sh

$(BUILD_DIR)/Makefile:
	cmake --preset $(PRESET)

configure: $(BUILD_DIR)/Makefile

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

run: setup build
	./scripts/run.sh

test: setup build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

bench: setup build
	./scripts/bench.sh

baseline: setup build
	./scripts/baseline.sh

clean:
	rm -rf $(BUILD_DIR)
