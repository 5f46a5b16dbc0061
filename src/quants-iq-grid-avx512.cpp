// AVX-512 nearest-candidate search of the IQ grid quantizers (see quants-iq-grid-simd.h).
#include "ggq-lanes-x86.h"
#include "quants-iq-grid-simd.h"

#include <immintrin.h>

#include <cfloat>

namespace ggq {

uint32_t nearest_candidate_avx512(const float * q, uint32_t stride, uint32_t count, int dim, const float * x,
                                  const float * w, float scale) {
    alignas(64) float d2[2048 + 16];
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 vmin = _mm512_set1_ps(FLT_MAX);
    for (uint32_t j = 0; j < stride; j += 16) {
        const uint32_t left = stride - j;
        const __mmask16 load = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        const uint32_t nvalid = count > j ? count - j : 0;
        const __mmask16 valid = nvalid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nvalid) - 1);
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < dim; ++i) {
            const __m512 qv = _mm512_maskz_loadu_ps(load, q + (size_t)i * stride + j);
            const __m512 diff = _mm512_sub_ps(_mm512_mul_ps(vs, qv), _mm512_set1_ps(x[i]));
            acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(w[i]), diff), diff));
        }
        _mm512_store_ps(d2 + j, acc);
        vmin = _mm512_mask_min_ps(vmin, valid, acc, vmin);  // a NaN lane keeps vmin
    }
    return first_index_of_min(x86::avx512::hmin(vmin), d2);
}

const grid_lanes grid_lanes_avx512 = {nearest_run_dispatch<v16f, v16i>, round_levels_lanes<v16f, v16i>, level_sums_lanes<v16f>, 4};

}  // namespace ggq
