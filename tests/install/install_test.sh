#!/usr/bin/env bash
# ctest Install.*: what an app team and an operator do with a built fedlora, checked against
# the installed copy only (never the build tree).
#   prefix  `cmake --install --prefix`; a C program built with pkg-config, a C and a C++ program
#           built with find_package(fedlora); each opens the base model (the tokenizer plugin
#           must be the installed one) and takes a suggestion strip.
#   deb     `cpack -G DEB`; the package unpacked into a scratch root (dpkg -x) holds the unit
#           and the default config; `fedlora --version` and the C program run from there.
# Usage: install_test.sh prefix|deb BUILD_DIR SOURCE_DIR SHARED_DIR WORK_DIR
set -euo pipefail
mode=$1 build=$2 src=$3 shared=$4 work=$5
model=$shared/fixtures/hf-tiny-llama/base
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs a consumer and checks the dynamic loader took libfedlora.so and the tokenizer plugin
# from under $1 (LD_DEBUG=files lists every object loaded, dlopen included).
run_consumer() {
  local root=$1 libdir=$2 name=$3; shift 3
  local log=$work/$name.ld.log state=$work/state-$name
  LD_DEBUG=files LD_DEBUG_OUTPUT=$log LD_LIBRARY_PATH=$libdir \
    timeout 120 "$@" "$model" "$state" > "$work/$name.out" || fail "$name: $(cat "$work/$name.out")"
  cat "$work/$name.out"
  grep -q "suggestions, first" "$work/$name.out" || fail "$name printed no strip"
  grep -h "calling init: $root/.*/libfedlora.so.1" "$log".* > /dev/null \
    || fail "$name: libfedlora.so not loaded from $root: $(grep -h "init:.*libfedlora" "$log".*)"
  grep -h "calling init: $root/.*/libfedlora_sp.so" "$log".* > /dev/null \
    || fail "$name: tokenizer plugin not loaded from $root: $(grep -h "init:.*libfedlora" "$log".*)"
}

case $mode in
prefix)
  prefix=$work/prefix
  timeout 300 cmake --install "$build" --prefix "$prefix" > "$work/install.log"
  [[ -f $prefix/etc/fedlora/coordinator.env ]] || fail "config not under the prefix"
  libdir=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --variable=libdir fedlora)
  [[ $(realpath "$libdir") == $(realpath "$prefix")/lib ]] || fail "pkg-config libdir $libdir"
  # pkg-config: C11, warnings as errors.
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror -pedantic "$src/tests/install/consumer.c" -o "$work/c_pc" \
    $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs fedlora)
  run_consumer "$(realpath "$prefix")" "$libdir" c_pc "$work/c_pc"
  # find_package(fedlora) from a separate CMake project.
  timeout 300 cmake -S "$src/tests/install" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="-Wall -Werror" -DCMAKE_CXX_FLAGS="-Wall -Werror" > "$work/cmake.log"
  timeout 300 cmake --build "$work/cmake" > "$work/cmake-build.log"
  run_consumer "$(realpath "$prefix")" "$libdir" c_cmake "$work/cmake/consumer_c"
  run_consumer "$(realpath "$prefix")" "$libdir" cxx_cmake "$work/cmake/consumer_cxx"
  # The installed CLI: the same version as the library, and it finds its plugin (from bin/).
  cli_version=$("$prefix/bin/fedlora" --version | awk '{print $2}')
  grep -q "^fedlora $cli_version (C)" "$work/c_pc.out" || fail "CLI $cli_version vs $(cat "$work/c_pc.out")"
  LD_DEBUG=files LD_DEBUG_OUTPUT=$work/cli.ld.log timeout 120 "$prefix/bin/fedlora" suggest \
    --model "$model" --prefix "The" > "$work/cli.out" || fail "installed CLI suggest: $(cat "$work/cli.out")"
  grep -h "calling init: $(realpath "$prefix")/.*/libfedlora_sp.so" "$work"/cli.ld.log.* > /dev/null \
    || fail "installed CLI: plugin not loaded from the prefix"
  ;;
deb)
  (cd "$work" && timeout 600 cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkg") \
    > "$work/cpack.log" || fail "cpack: $(tail -20 "$work/cpack.log")"
  deb=$(ls "$work"/pkg/fedlora_*.deb)
  dpkg-deb --info "$deb" > "$work/info.txt"
  grep -q "^ Package: fedlora$" "$work/info.txt" || fail "package name"
  grep -q "^ Depends:.*libtorch" "$work/info.txt" || fail "no libtorch dependency: $(cat "$work/info.txt")"
  # Listed to a file first: with pipefail, grep -q closing the pipe early can fail tar (SIGPIPE).
  dpkg-deb --ctrl-tarfile "$deb" | tar -t > "$work/control_files.txt"
  grep -q "postinst" "$work/control_files.txt" || fail "no postinst: $(cat "$work/control_files.txt")"
  dpkg-deb --info "$deb" conffiles > "$work/conffiles.txt"
  grep -qx "/etc/fedlora/coordinator.env" "$work/conffiles.txt" || fail "conffiles"
  root=$work/root
  dpkg -x "$deb" "$root"
  for f in usr/bin/fedlora usr/include/fedlora.h usr/lib/pkgconfig/fedlora.pc \
           usr/lib/cmake/fedlora/fedloraConfig.cmake usr/lib/fedlora/libfedlora_sp.so \
           usr/lib/systemd/system/fedlora-coordinator.service etc/fedlora/coordinator.env; do
    [[ -e $root/$f ]] || fail "package lacks /$f"
  done
  ls "$root"/usr/lib/libfedlora.so.1* > /dev/null || fail "package lacks libfedlora.so.1"
  grep -q "^ExecStart=/usr/bin/fedlora coordinator run --state \${FEDLORA_STATE}" \
    "$root/usr/lib/systemd/system/fedlora-coordinator.service" || fail "unit ExecStart"
  "$root/usr/bin/fedlora" --version | tee "$work/version.out"
  grep -q "^fedlora [0-9]" "$work/version.out" || fail "fedlora --version"
  cc -std=c11 -Wall -Werror "$src/tests/install/consumer.c" -I"$root/usr/include" \
    -L"$root/usr/lib" -lfedlora -o "$work/c_deb"
  run_consumer "$(realpath "$root")" "$root/usr/lib" c_deb "$work/c_deb"
  ;;
*) fail "mode $mode: prefix or deb" ;;
esac
echo "install_test $mode: OK"
