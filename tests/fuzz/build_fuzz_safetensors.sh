#!/usr/bin/env bash
# Builds the libFuzzer harnesses for the safetensors reader and the JSON reader (clang with
# ASan + UBSan), and optionally runs them.
#   tests/fuzz/build_fuzz_safetensors.sh                 # build into $OUT (default /tmp/ggquant-fuzz)
#   tests/fuzz/build_fuzz_safetensors.sh run 1000000     # build, then run each for 1,000,000 executions
# Needs clang and libFuzzer (Debian 12: apt-get install -y clang libclang-rt-14-dev).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-/tmp/ggquant-fuzz}"
CXX="${CXX:-clang++}"
mkdir -p "$OUT"
FLAGS=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$ROOT/src")
CORE=("$ROOT/src/io/json.cpp" "$ROOT/src/io/safetensors.cpp" "$ROOT/src/io/file-util.cpp")
"$CXX" "${FLAGS[@]}" "$HERE/fuzz_safetensors.cpp" "${CORE[@]}" -o "$OUT/fuzz_safetensors"
"$CXX" "${FLAGS[@]}" "$HERE/fuzz_safetensors_json.cpp" "$ROOT/src/io/json.cpp" -o "$OUT/fuzz_safetensors_json"
echo "built $OUT/fuzz_safetensors $OUT/fuzz_safetensors_json"

if [[ "${1:-}" == "run" ]]; then
    RUNS="${2:-1000000}"
    for t in fuzz_safetensors fuzz_safetensors_json; do
        mkdir -p "$OUT/corpus_$t"  # new inputs land here; the committed seeds stay untouched
        (cd "$OUT" && "./$t" -runs="$RUNS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -dict="$HERE/fuzz_safetensors.dict" "$OUT/corpus_$t" "$HERE/corpus_${t#fuzz_}")
    done
fi
