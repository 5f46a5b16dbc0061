// K-quants (super-blocks of 256): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Scalar reference kernels
// (quants-k.cpp), bit-identical to ggml's quantize_row_<t>_ref (no importance weights) and
// quantize_<t> (with); vector versions in quants-k-lanes.h.
#pragma once

#include "ggq-common.h"
#include "ggq-kernel.h"

namespace ggq {

row_quantize_t quantize_row_q2_K_ref, quantize_row_q3_K_ref, quantize_row_q4_K_ref, quantize_row_q5_K_ref,
    quantize_row_q6_K_ref;
row_dequantize_t dequantize_row_q2_K, dequantize_row_q3_K, dequantize_row_q4_K, dequantize_row_q5_K, dequantize_row_q6_K;
// imatrix null: the _ref path on all rows; otherwise ggml's weighted search per row.
chunk_quantize_t quantize_q2_K, quantize_q3_K, quantize_q4_K, quantize_q5_K, quantize_q6_K;

#if defined(GGQUANT_X86_SIMD)
// Vector versions: one body over W float lanes (quants-k-lanes.h), compiled once per ISA in
// quants-k-avx2.cpp (W = 8) and quants-k-avx512.cpp (W = 16). Same bytes as quantize_<t>.
template <int W>
struct kquants_simd {
    static chunk_quantize_t q2_K, q3_K, q4_K, q5_K, q6_K;
};
// Defined by quants-*-avx2.cpp / -avx512.cpp only: no other unit may instantiate them with its own flags.
extern template struct kquants_simd<8>;
extern template struct kquants_simd<16>;
// The type table's names for them.
inline constexpr chunk_quantize_t *quantize_q2_K_avx2 = kquants_simd<8>::q2_K, *quantize_q2_K_avx512 = kquants_simd<16>::q2_K,
    *quantize_q3_K_avx2 = kquants_simd<8>::q3_K, *quantize_q3_K_avx512 = kquants_simd<16>::q3_K,
    *quantize_q4_K_avx2 = kquants_simd<8>::q4_K, *quantize_q4_K_avx512 = kquants_simd<16>::q4_K,
    *quantize_q5_K_avx2 = kquants_simd<8>::q5_K, *quantize_q5_K_avx512 = kquants_simd<16>::q5_K,
    *quantize_q6_K_avx2 = kquants_simd<8>::q6_K, *quantize_q6_K_avx512 = kquants_simd<16>::q6_K;
#endif

}  // namespace ggq
