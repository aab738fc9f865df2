#!/usr/bin/env bash
# Strata as its users get it: `cmake --install` into a staging prefix, then the examples
# built out of tree against it (examples/cpp with find_package(Strata), examples/c with
# pkg-config, and once more by hand with `cc $(pkg-config ...)`) and run; then `cpack -G
# DEB`, the package's metadata and contents checked, and the C++ example built against the
# unpacked package.
#   installed_package_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BUILD="$1" SRC="$2" WORK="$3"
rm -rf "$WORK" && mkdir -p "$WORK"
STAGE="$WORK/prefix"
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== cmake --install into $STAGE"
cmake --install "$BUILD" --prefix "$STAGE" > "$WORK/install.log"
for f in include/strata/strata.h include/strata/version.h include/strata/block_manager.h \
         include/strata/remote_store.h include/strata/types.h lib/libstrata.so \
         lib/cmake/Strata/StrataConfig.cmake lib/cmake/Strata/StrataConfigVersion.cmake \
         lib/cmake/Strata/StrataTargets.cmake lib/pkgconfig/strata.pc bin/strata; do
  [[ -e "$STAGE/$f" ]] || fail "not installed: $f"
done
[[ "$(readlink "$STAGE/lib/libstrata.so")" == libstrata.so.0 ]] || fail "libstrata.so does not link to the SONAME"
readelf -d "$STAGE/lib/libstrata.so" | grep -q 'SONAME.*\[libstrata.so.0\]' || fail "SONAME is not libstrata.so.0"
# Nothing installed may point back into the source or build tree (no src/ include path).
if grep -rl -e "$SRC" -e "$BUILD" "$STAGE/lib/cmake" "$STAGE/lib/pkgconfig"; then
  fail "the installed package files name the source or build tree"
fi
"$STAGE/bin/strata" --version | grep -q "strata $(sed -n 's/#define STRATA_VERSION_STRING "\(.*\)"/\1/p' "$STAGE/include/strata/version.h")" \
  || fail "strata --version does not match version.h"

echo "== examples/cpp with find_package(Strata)"
cmake -S "$SRC/examples/cpp" -B "$WORK/cpp" -G Ninja -DCMAKE_PREFIX_PATH="$STAGE" > "$WORK/cpp.log"
cmake --build "$WORK/cpp" >> "$WORK/cpp.log"
"$WORK/cpp/engine_loop"

echo "== examples/c with pkg-config"
export PKG_CONFIG_PATH="$STAGE/lib/pkgconfig"
cmake -S "$SRC/examples/c" -B "$WORK/c" -G Ninja > "$WORK/c.log"
cmake --build "$WORK/c" >> "$WORK/c.log"
"$WORK/c/engine_loop"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Werror -pedantic "$SRC/examples/c/engine_loop.c" $(pkg-config --cflags --libs strata) \
  -Wl,-rpath,"$STAGE/lib" -o "$WORK/engine_loop_cc"
"$WORK/engine_loop_cc" > /dev/null
unset PKG_CONFIG_PATH

# The Python package, when this build has it: installed into Debian's dist-packages layout
# and importable from there by Debian's interpreter (the example runs against it).
PY_PKG=lib/python3/dist-packages/strata
if [[ -d "$BUILD/python/strata" ]]; then
  echo "== the strata Python package from $STAGE/$PY_PKG"
  for f in __init__.py vllm.py _strata.pyi py.typed; do
    [[ -e "$STAGE/$PY_PKG/$f" ]] || fail "not installed: $PY_PKG/$f"
  done
  ls "$STAGE/$PY_PKG"/_strata.*.so > /dev/null || fail "not installed: $PY_PKG/_strata.*.so"
  (cd "$WORK" && PYTHONPATH="$STAGE/lib/python3/dist-packages" /usr/bin/python3 \
     "$SRC/examples/python/engine_loop.py") | grep -q "python example: OK" \
    || fail "examples/python/engine_loop.py against the installed package"
  PYTHONPATH="$STAGE/lib/python3/dist-packages" /usr/bin/python3 -c \
    "import strata, strata.vllm; assert strata.__file__.startswith('$STAGE')" \
    || fail "import strata.vllm from the installed package"
fi

echo "== cpack -G DEB"
(cd "$BUILD" && cpack -G DEB -B "$WORK/deb" > "$WORK/cpack.log") || { cat "$WORK/cpack.log"; fail "cpack"; }
DEB="$(ls "$WORK"/deb/strata_*.deb)"
dpkg-deb -I "$DEB" > "$WORK/deb-info.txt"
cat "$WORK/deb-info.txt"
for dep in libfmt9 libspdlog1.10 libssl3 liburing2 libhiredis0.14 libtomlplusplus3 libxxhash0 libc6 libstdc++6; do
  grep -q "Depends:.*\b$dep\b" "$WORK/deb-info.txt" || fail "the package does not depend on $dep"
done
dpkg-deb -c "$DEB" > "$WORK/deb-contents.txt"
for f in ./usr/include/strata/strata.h ./usr/lib/libstrata.so.0 ./usr/lib/cmake/Strata/StrataConfig.cmake \
         ./usr/lib/pkgconfig/strata.pc ./usr/bin/strata; do
  grep -q " $f" "$WORK/deb-contents.txt" || fail "the package lacks $f"
done
if [[ -d "$BUILD/python/strata" ]]; then
  for f in ./usr/$PY_PKG/__init__.py ./usr/$PY_PKG/vllm.py; do
    grep -q " $f" "$WORK/deb-contents.txt" || fail "the package lacks $f"
  done
fi
dpkg-deb -x "$DEB" "$WORK/unpacked"
if [[ -d "$BUILD/python/strata" ]]; then
  (cd "$WORK" && PYTHONPATH="$WORK/unpacked/usr/lib/python3/dist-packages" /usr/bin/python3 \
     "$SRC/examples/python/engine_loop.py") | grep -q "python example: OK" \
    || fail "examples/python/engine_loop.py against the .deb"
fi
cmake -S "$SRC/examples/cpp" -B "$WORK/cpp-deb" -G Ninja -DCMAKE_PREFIX_PATH="$WORK/unpacked/usr" > "$WORK/cpp-deb.log"
cmake --build "$WORK/cpp-deb" >> "$WORK/cpp-deb.log"
"$WORK/cpp-deb/engine_loop" > /dev/null
echo "installed package: OK"
