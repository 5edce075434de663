# accel: the two commands a new machine needs (each installs what is missing first).
#   make run    build and train the seed's model on Fashion-MNIST (ARGS="--epochs 5 --batch-size 512")
#   make test   build and run the whole test suite
# And: make asan (the suite under AddressSanitizer + UBSan), make format-check, make bench.

BUILD ?= build
ASAN_BUILD ?= build-asan
ARGS ?= --epochs 5
CMAKE_FLAGS ?=

.PHONY: run test build deps-run deps-test deps-bench asan format-check format bench clean

# `make run` builds only what it runs (the accel command); `make test` builds everything.
run: deps-run
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) --target accel_cli
	./$(BUILD)/accel train $(ARGS)

test: deps-test build
	scripts/test-venv.sh $(BUILD)
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -j2

build:
	scripts/pjrt-plugin.sh $(BUILD)
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD)

deps-run:
	scripts/install-deps.sh run

deps-test:
	scripts/install-deps.sh test

deps-bench:
	scripts/install-deps.sh bench

asan: deps-test
	# -O1 -g1 (line tables): half the compile time of -O2 -g under ASan (smi_command.cpp 94 s -> 43 s),
	# and stack traces keep their lines.
	scripts/pjrt-plugin.sh $(ASAN_BUILD)
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DACCEL_SANITIZE=ON
	cmake --build $(ASAN_BUILD)
	scripts/test-venv.sh $(ASAN_BUILD)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure --no-tests=error -j2

format-check: deps-test
	git ls-files '*.h' '*.cpp' '*.cu' '*.cuh' | xargs clang-format --dry-run -Werror

format:
	git ls-files '*.h' '*.cpp' '*.cu' '*.cuh' | xargs clang-format -i

bench: deps-bench build
	bench/setup-venv.sh >/dev/null
	bench/train_bench.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
