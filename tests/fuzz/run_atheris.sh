#!/usr/bin/env bash
# Runs the atheris harnesses (tests/fuzz/fuzz_python.py) on seed corpora, niced.
#   tests/fuzz/run_atheris.sh TARGET [RUNS]    # TARGET: gguf | safetensors | checkpoint | imatrix
# New corpus inputs and crash artifacts go to $OUT (default /tmp/ggquant-atheris); needs
# pip install atheris (the "fuzz" extra). Exit status 0: no finding. PYROOT (default: this tree's
# python/) is what is imported: point it at a copy to keep rebuilding while a long run goes on.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-/tmp/ggquant-atheris}"
T="$1"
RUNS="${2:-1000000}"
export PYTHONPATH="${PYROOT:-$ROOT/python}${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT/corpus_$T" "$OUT/artifacts_$T"
[[ -d "$OUT/seeds/imatrix" ]] || python "$HERE/make_corpus_python.py" "$OUT/seeds"
case "$T" in
    gguf) SEEDS=("$HERE/corpus_gguf") ;;
    safetensors) SEEDS=("$HERE/corpus_safetensors") ;;
    checkpoint) SEEDS=("$OUT/seeds/checkpoint" "$HERE/corpus_safetensors_json") ;;
    imatrix) SEEDS=("$OUT/seeds/imatrix" "$HERE/corpus_gguf") ;;
    *) echo "unknown target $T" >&2; exit 2 ;;
esac
exec nice -n 15 python "$HERE/fuzz_python.py" "$T" -atheris_runs="$RUNS" -max_len=4096 -timeout=20 \
    -rss_limit_mb=3072 -print_final_stats=1 -artifact_prefix="$OUT/artifacts_$T/" "$OUT/corpus_$T" "${SEEDS[@]}"
