#!/usr/bin/env bash
# Builds the libFuzzer harnesses for the safetensors reader and the JSON reader (clang with
# ASan + UBSan), and optionally runs them.
#   tests/fuzz/build_fuzz_safetensors.sh                 # build into $OUT (default /tmp/ggquant-fuzz)
#   tests/fuzz/build_fuzz_safetensors.sh run 1000000     # build, then run each for 1,000,000 executions
# Needs clang and libFuzzer (Debian 12: apt-get install -y clang libclang-rt-14-dev).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/fuzz_common.sh"
CORE=("$ROOT/src/io/json.cpp" "$ROOT/src/io/safetensors.cpp" "$ROOT/src/io/file-util.cpp")
"$CXX" "${FLAGS[@]}" "$HERE/fuzz_safetensors.cpp" "${CORE[@]}" -o "$OUT/fuzz_safetensors"
"$CXX" "${FLAGS[@]}" "$HERE/fuzz_safetensors_json.cpp" "$ROOT/src/io/json.cpp" -o "$OUT/fuzz_safetensors_json"
echo "built $OUT/fuzz_safetensors $OUT/fuzz_safetensors_json"

if [[ "${1:-}" == "run" ]]; then
    for t in fuzz_safetensors fuzz_safetensors_json; do
        run_fuzzer "$t" fuzz_safetensors.dict "${2:-1000000}"
    done
fi
