#!/usr/bin/env bash
# Builds the libFuzzer harness for the GGUF reader (clang with ASan + UBSan), and optionally runs it.
#   tests/fuzz/build_fuzz_gguf.sh                # build into $OUT (default /tmp/ggquant-fuzz)
#   tests/fuzz/build_fuzz_gguf.sh run 1000000    # build, then run for 1,000,000 executions
# Needs clang and libFuzzer (Debian 12: apt-get install -y clang libclang-rt-14-dev).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-/tmp/ggquant-fuzz}"
CXX="${CXX:-clang++}"
mkdir -p "$OUT"
FLAGS=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -ffp-contract=off -I"$ROOT/src")
# the reader needs the type table, which links the portable kernels (not the ISA-specific files)
mapfile -t CORE < <(find "$ROOT/src" -name '*.cpp' ! -name '*-avx2.cpp' ! -name '*-avx512.cpp' | sort)
"$CXX" "${FLAGS[@]}" "$HERE/fuzz_gguf.cpp" "${CORE[@]}" -o "$OUT/fuzz_gguf"
echo "built $OUT/fuzz_gguf"

if [[ "${1:-}" == "run" ]]; then
    RUNS="${2:-1000000}"
    mkdir -p "$OUT/corpus_fuzz_gguf"  # new inputs land here; the committed seeds stay untouched
    (cd "$OUT" && ./fuzz_gguf -runs="$RUNS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="$HERE/fuzz_gguf.dict" "$OUT/corpus_fuzz_gguf" "$HERE/corpus_gguf")
fi
