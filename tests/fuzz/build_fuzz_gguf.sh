#!/usr/bin/env bash
# Builds the libFuzzer harness for the GGUF reader (clang with ASan + UBSan), and optionally runs it.
#   tests/fuzz/build_fuzz_gguf.sh                # build into $OUT (default /tmp/ggquant-fuzz)
#   tests/fuzz/build_fuzz_gguf.sh run 1000000    # build, then run for 1,000,000 executions
# Needs clang and libFuzzer (Debian 12: apt-get install -y clang libclang-rt-14-dev).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/fuzz_common.sh"
FLAGS+=(-ffp-contract=off)
# the reader needs the type table, which links the portable kernels (not the ISA-specific files)
mapfile -t CORE < <(find "$ROOT/src" -name '*.cpp' ! -name '*-avx2.cpp' ! -name '*-avx512.cpp' | sort)
"$CXX" "${FLAGS[@]}" "$HERE/fuzz_gguf.cpp" "${CORE[@]}" -o "$OUT/fuzz_gguf"
echo "built $OUT/fuzz_gguf"

if [[ "${1:-}" == "run" ]]; then
    run_fuzzer fuzz_gguf fuzz_gguf.dict "${2:-1000000}"
fi
