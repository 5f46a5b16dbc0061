// K-quant chunk quantizers on AVX-512: sixteen groups searched at once, one per lane, bit-identical to
// the scalar reference (see quants-k-lanes.h).
#include "quants-k-lanes.h"

#include "quants-k-avx.h"

namespace ggq {

namespace {
typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
using K = kq::kquants<vf16, vi16>;
}  // namespace

size_t quantize_q2_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q2_K(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q3_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q3_K(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q4_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q4_K(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q5_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q5_K(src, dst, nrows, n_per_row, imatrix);
}
size_t quantize_q6_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return K::q6_K(src, dst, nrows, n_per_row, imatrix);
}

}  // namespace ggq
