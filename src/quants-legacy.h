// F32 / F16 / BF16 and the legacy block-of-32 formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
// Scalar reference kernels in quants-legacy.cpp; vector versions in quants-legacy-lanes.h.
#pragma once

#include "ggq-common.h"
#include "ggq-kernel.h"

namespace ggq {

row_quantize_t quantize_row_f32_ref, quantize_row_f16_ref, quantize_row_bf16_ref, quantize_row_q4_0_ref,
    quantize_row_q4_1_ref, quantize_row_q5_0_ref, quantize_row_q5_1_ref, quantize_row_q8_0_ref;
row_dequantize_t dequantize_row_f32, dequantize_row_f16, dequantize_row_bf16, dequantize_row_q4_0, dequantize_row_q4_1,
    dequantize_row_q5_0, dequantize_row_q5_1, dequantize_row_q8_0;
// Without importance weights the row reference on all rows; with them (Q4_0..Q5_1) ggml's
// quantize_row_<t>_impl, which reuses the K-quant scale searches (quants-k-search.h).
chunk_quantize_t quantize_f32, quantize_f16, quantize_bf16, quantize_q4_0, quantize_q4_1, quantize_q5_0, quantize_q5_1,
    quantize_q8_0;

namespace legacy {
// Weighted blocks of 32: sigma2 of a whole row (mean of x^2, in ggml's order), and the packing of
// one block from its search result (scale d, negated offset the_min, levels L). Shared by the
// reference and the vector search, so that both write a block the same way.
float row_sigma2(const float * x, int64_t n);
void finish_q4_0_w(float d, const uint8_t * L, block_q4_0 & b);
void finish_q4_1_w(float d, float the_min, const uint8_t * L, block_q4_1 & b);
void finish_q5_0_w(float d, const uint8_t * L, block_q5_0 & b);
void finish_q5_1_w(float d, float the_min, const uint8_t * L, block_q5_1 & b);
}  // namespace legacy

#if defined(GGQUANT_X86_SIMD)
// Vector versions: one body over W float lanes (quants-legacy-lanes.h), compiled once per ISA in
// quants-legacy-avx2.cpp (W = 8) and quants-legacy-avx512.cpp (W = 16). Same bytes as quantize_<t>.
template <int W>
struct legacy_simd {
    static chunk_quantize_t q4_0, q4_1, q5_0, q5_1, q8_0;
};
// Defined by quants-*-avx2.cpp / -avx512.cpp only: no other unit may instantiate them with its own flags.
extern template struct legacy_simd<8>;
extern template struct legacy_simd<16>;
// The type table's names for them.
inline constexpr chunk_quantize_t *quantize_q4_0_avx2 = legacy_simd<8>::q4_0, *quantize_q4_0_avx512 = legacy_simd<16>::q4_0,
    *quantize_q4_1_imatrix_avx2 = legacy_simd<8>::q4_1, *quantize_q4_1_imatrix_avx512 = legacy_simd<16>::q4_1,
    *quantize_q5_0_imatrix_avx2 = legacy_simd<8>::q5_0, *quantize_q5_0_imatrix_avx512 = legacy_simd<16>::q5_0,
    *quantize_q5_1_imatrix_avx2 = legacy_simd<8>::q5_1, *quantize_q5_1_imatrix_avx512 = legacy_simd<16>::q5_1,
    *quantize_q8_0_avx2 = legacy_simd<8>::q8_0, *quantize_q8_0_avx512 = legacy_simd<16>::q8_0;
#endif

}  // namespace ggq
