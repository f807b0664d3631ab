#!/usr/bin/env bash
# Snapstore benchmarks: builds bench_store in its own build directory (no
# change to the root CMakeLists needed) and prints Markdown tables.
#   bench/store/run.sh [pin|cow|bs|index|dir]...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD:-$top/build-bench-store}
mkdir -p "$build"
cat > "$build/CMakeLists.txt.in" <<EOC
cmake_minimum_required(VERSION 3.20)
project(bench_store C)
set(CMAKE_C_STANDARD 17)
set(CMAKE_C_EXTENSIONS ON)
set(CMAKE_BUILD_TYPE Release)
add_compile_options(-Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(LIBBSD REQUIRED IMPORTED_TARGET libbsd-overlay)
find_package(Threads REQUIRED)
set(PROJECT_SOURCE_DIR $top)
add_subdirectory($top/src/common common)
add_subdirectory($top/src/snapstore snapstore)
add_subdirectory($here bench)
EOC
mkdir -p "$build/wrap"
cp "$build/CMakeLists.txt.in" "$build/wrap/CMakeLists.txt"
cmake -S "$build/wrap" -B "$build/out" >/dev/null
cmake --build "$build/out" -j2 --target bench_store >/dev/null
echo "_$(date -u +%F) $(uname -r), $(nproc) vCPU, /dev/shm (tmpfs), SQLite $(pkg-config --modversion sqlite3)_"
"$build/out/bench/bench_store" "$@"
