#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has the CUDA toolkit but none of
# our Debian -dev packages (oneDNN, SQLite, cpp-httplib, GoogleTest): the CUDA build's binaries
# and the shared libraries they load beyond glibc/libstdc++, as .gpu-bundle/bundle.tar.xz.
# The device tool carries .gpu-bundle (ignored by git) next to the working tree. The build is
# its own folder (build-gpu), for any x86-64-v3 CPU (AVX2: every GPU server's) rather than this
# machine's, and the bundle holds Fashion-MNIST (the GPU machine has no network to fetch it).
#
#   scripts/make-gpu-bundle.sh            # then: device run, carry [".gpu-bundle"]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DACCEL_WITH_CUDA=ON -DACCEL_NATIVE=OFF \
  -DCMAKE_CXX_FLAGS=-march=x86-64-v3 >/dev/null
cmake --build "$BUILD"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/build/tests" "$stage/lib"
cp "$BUILD"/{accel,allocator_bench,seed_example,service_load_bench} "$stage/build/"
cp "$BUILD"/tests/{accel_tests,accel_service_tests} "$BUILD"/tests/lib*.so "$stage/build/tests/"
# Every shared library the binaries load, except the C/C++ runtime the GPU machine has itself.
for bin in "$stage"/build/accel "$stage"/build/tests/accel_tests "$stage"/build/tests/accel_service_tests; do
  ldd "$bin" | awk '/=> \//{print $3}'
done | sort -u | grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt)\.so' |
  xargs -I{} cp -L {} "$stage/lib/"
mkdir -p "$stage/data"
cp -r "$DATA" "$stage/data/fashion-mnist"
mkdir -p .gpu-bundle
tar -C "$stage" -cJf .gpu-bundle/bundle.tar.xz build lib data
grep -qx '/.gpu-bundle/' .git/info/exclude 2>/dev/null || echo '/.gpu-bundle/' >>.git/info/exclude
ls -la .gpu-bundle/bundle.tar.xz
