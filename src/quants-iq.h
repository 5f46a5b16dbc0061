// IQ formats: IQ4_NL / IQ4_XS quantize and dequantize; IQ2 / IQ3 / IQ1 dequantize. Scalar
// reference kernels in quants-iq.cpp; vector IQ4 quantizers in quants-iq4-lanes.h.
#pragma once

#include "ggq-common.h"
#include "ggq-kernel.h"

namespace ggq {

// ===== IQ4_NL / IQ4_XS
row_quantize_t quantize_row_iq4_nl_ref, quantize_row_iq4_xs_ref;
row_dequantize_t dequantize_row_iq4_nl, dequantize_row_iq4_xs;
chunk_quantize_t quantize_iq4_nl, quantize_iq4_xs;

// ===== IQ2 / IQ3 / IQ1: dequantize only
row_dequantize_t dequantize_row_iq2_xxs, dequantize_row_iq2_xs, dequantize_row_iq2_s, dequantize_row_iq3_xxs,
    dequantize_row_iq3_s, dequantize_row_iq1_s, dequantize_row_iq1_m;

#if defined(GGQUANT_X86_SIMD)
// Vector IQ4 quantizers: one body over W float lanes (quants-iq4-lanes.h), compiled once per ISA in
// quants-iq-avx2.cpp (W = 8) and quants-iq-avx512.cpp (W = 16). Same bytes as quantize_<t>.
template <int W>
struct iq4_simd {
    static chunk_quantize_t iq4_nl, iq4_xs;
};
// Defined by quants-*-avx2.cpp / -avx512.cpp only: no other unit may instantiate them with its own flags.
extern template struct iq4_simd<8>;
extern template struct iq4_simd<16>;
// The type table's names for them.
inline constexpr chunk_quantize_t *quantize_iq4_nl_avx2 = iq4_simd<8>::iq4_nl, *quantize_iq4_nl_avx512 = iq4_simd<16>::iq4_nl,
    *quantize_iq4_xs_avx2 = iq4_simd<8>::iq4_xs, *quantize_iq4_xs_avx512 = iq4_simd<16>::iq4_xs;
#endif

}  // namespace ggq
