#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the build in $1 to a temporary prefix and build the example counter_list.c
# against the installed header and library, once through find_package(aegis) and once
# through pkg-config, then run both programs. Registered as ctest examples.install
# (unsanitized builds only: a sanitized libaegis needs the sanitizer runtime to link).
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/aegis-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log"

# 0. The installed programs: exactly the operator's three (aegis-demo stays in the build).
for p in aegisd aegis-cli aegis-bench; do
    [ -x "$tmp/prefix/bin/$p" ] || { echo "bin/$p is not installed"; exit 1; }
done
if [ -e "$tmp/prefix/bin/aegis-demo" ]; then echo "bin/aegis-demo is installed"; exit 1; fi
"$tmp/prefix/bin/aegisd" --version | grep -q '^aegisd [0-9]' \
    || { echo "installed aegisd --version"; exit 1; }
echo "bin/: aegisd, aegis-cli, aegis-bench; no aegis-demo"

# 1. CMake package: a three-line project linking aegis::aegis (the shared library).
mkdir -p "$tmp/app"
cp "$src/counter_list.c" "$tmp/app/"
cat > "$tmp/app/CMakeLists.txt" <<'EOT'
cmake_minimum_required(VERSION 3.25)
project(app LANGUAGES C)
find_package(aegis 0.1 REQUIRED)
add_executable(app_shared counter_list.c)
target_link_libraries(app_shared PRIVATE aegis::aegis)
add_executable(app_static counter_list.c)
target_link_libraries(app_static PRIVATE aegis::aegis_static)
EOT
cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" > "$tmp/app.log"
cmake --build "$tmp/app/build" >> "$tmp/app.log"
"$tmp/app/build/app_shared" > /dev/null 2>&1
"$tmp/app/build/app_static" > /dev/null 2>&1
echo "find_package(aegis): shared and static builds run"

# 2. pkg-config, shared and --static.
libdir=$(dirname "$(find "$tmp/prefix" -name aegis.pc)")
export PKG_CONFIG_PATH="$libdir"
cc -std=c11 -o "$tmp/pc_shared" "$src/counter_list.c" $(pkg-config --cflags --libs aegis) \
    -Wl,-rpath,"$(pkg-config --variable=libdir aegis)"
cc -std=c11 -o "$tmp/pc_static" "$src/counter_list.c" $(pkg-config --cflags aegis) \
    "$(pkg-config --variable=libdir aegis)/libaegis.a" \
    $(pkg-config --static --libs aegis | sed 's/-laegis//')
"$tmp/pc_shared" > /dev/null 2>&1
"$tmp/pc_static" > /dev/null 2>&1
echo "pkg-config aegis: shared and static builds run"
