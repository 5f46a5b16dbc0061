// K-quant chunk quantizers on AVX2: eight groups searched at once, one per lane, bit-identical to
// the scalar reference (see quants-k-lanes.h).
#include "quants-k-lanes.h"

#include "quants-k-avx.h"
#include "quants-k.h"
#include "quants-legacy.h"

namespace ggq {

namespace {
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
using K = kq::kquants<vf8, vi8>;
}  // namespace

size_t quantize_q2_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q2_K(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q3_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q3_K(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q4_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q4_K(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q5_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q5_K(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q6_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q6_K(src, dst, nrows, n_per_row, imatrix);
}

// Weighted legacy types: the vector search when importance weights are given, else the reference.
size_t quantize_q4_0_imatrix_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (!imatrix) return quantize_q4_0(src, dst, nrows, n_per_row, imatrix);
    return K::legacy_weighted<block_q4_0, 8, false>(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q4_1_imatrix_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (!imatrix) return quantize_q4_1(src, dst, nrows, n_per_row, imatrix);
    return K::legacy_weighted<block_q4_1, 15, true>(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q5_0_imatrix_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (!imatrix) return quantize_q5_0(src, dst, nrows, n_per_row, imatrix);
    return K::legacy_weighted<block_q5_0, 16, false>(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q5_1_imatrix_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (!imatrix) return quantize_q5_1(src, dst, nrows, n_per_row, imatrix);
    return K::legacy_weighted<block_q5_1, 31, true>(src, dst, nrows, n_per_row, imatrix);
}

}  // namespace ggq
