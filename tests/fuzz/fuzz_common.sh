# Sourced by build_fuzz_*.sh after they set HERE: the output folder, compiler and sanitizer flags the
# harnesses share, and one libFuzzer run.
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-/tmp/ggquant-fuzz}"
CXX="${CXX:-clang++}"
mkdir -p "$OUT"
FLAGS=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$ROOT/src")

# run_fuzzer NAME DICT RUNS: $OUT/NAME from the committed seeds in corpus_<NAME less fuzz_>; new inputs
# land in $OUT/corpus_NAME, so the seeds stay untouched.
run_fuzzer() {
    mkdir -p "$OUT/corpus_$1"
    (cd "$OUT" && "./$1" -runs="$3" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="$HERE/$2" "$OUT/corpus_$1" "$HERE/corpus_${1#fuzz_}")
}
