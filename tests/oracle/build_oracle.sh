#!/usr/bin/env bash
# Build the ggml oracle libraries (libggml-base, libggml-cpu, libggml, libllama)
# from the llama.cpp sources vendored in the llama-cpp-python sdist, and install
# the llama_cpp Python package (pure Python part) using those same libraries.
#
# Needs: python3 with pip, a C/C++ compiler (gcc/g++), cmake >= 3.21, ninja.
#   Debian:  apt-get install -y build-essential cmake ninja-build
#   or PyPI: python3 -m pip install cmake ninja
#
# Env knobs:
#   PYTHON       interpreter whose site-packages get llama_cpp (default: python3)
#   ORACLE_DIR   work dir for sdist + build tree (default: $HOME/.cache/ggquant-oracle)
#   JOBS         parallel compile jobs (default: 2)
set -euo pipefail

VER=0.3.36
PY=${PYTHON:-python3}
WORK=${ORACLE_DIR:-$HOME/.cache/ggquant-oracle}
JOBS=${JOBS:-2}
SDIST=llama_cpp_python-$VER.tar.gz

mkdir -p "$WORK"
cd "$WORK"

# 1. sdist (PyPI has no llama-cpp-python wheels; only the sdist)
if [ ! -f "$SDIST" ]; then
    "$PY" -m pip download --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$VER" -d .
fi
[ -d "llama_cpp_python-$VER" ] || tar xzf "$SDIST"
SRC="$WORK/llama_cpp_python-$VER/vendor/llama.cpp"

# 2. shared libs only (no common/tools/tests/examples/server/mtmd)
#    GGML_NATIVE=OFF: portable ggml-cpu (x86-64 + AVX2/FMA/F16C), no -march=native.
#    ggml-base (the reference quantizers) gets no ISA flags in either case.
OFF=()
for opt in GGML_NATIVE GGML_CCACHE LLAMA_OPENSSL LLAMA_BUILD_COMMON LLAMA_BUILD_TESTS LLAMA_BUILD_EXAMPLES \
           LLAMA_BUILD_TOOLS LLAMA_BUILD_SERVER LLAMA_BUILD_APP; do
    OFF+=("-D$opt=OFF")
done
cmake -S "$SRC" -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON "${OFF[@]}" \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
    '-DCMAKE_INSTALL_RPATH=$ORIGIN'
cmake --build build -j "$JOBS" --target llama   # pulls in ggml, ggml-base, ggml-cpu

# 3. llama_cpp Python package without its own native build, then drop the
#    libs into site-packages/llama_cpp/lib where it (and ggml_oracle) look.
CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" \
    "$PY" -m pip install --no-cache-dir "./$SDIST"
LIBDIR=$("$PY" -c 'import importlib.util, os; s = importlib.util.find_spec("llama_cpp"); print(os.path.join(list(s.submodule_search_locations)[0], "lib"))')
mkdir -p "$LIBDIR"
cp -P build/bin/lib*.so* "$LIBDIR/"
echo "oracle libs installed in $LIBDIR"
ls -l "$LIBDIR"
