// AVX2 nearest-candidate search of the IQ grid quantizers (see quants-iq-grid-simd.h).
#include "ggq-lanes-x86.h"
#include "quants-iq-grid-simd.h"

#include <immintrin.h>

#include <cfloat>

namespace ggq {

uint32_t nearest_candidate_avx2(const float * q, uint32_t stride, uint32_t count, int dim, const float * x, const float * w,
                                float scale) {
    alignas(32) float d2[2048];
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 vmin = _mm256_set1_ps(FLT_MAX);
    for (uint32_t j = 0; j < stride; j += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int i = 0; i < dim; ++i) {
            const __m256 diff = _mm256_sub_ps(_mm256_mul_ps(vs, _mm256_loadu_ps(q + (size_t)i * stride + j)), _mm256_set1_ps(x[i]));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(w[i]), diff), diff));
        }
        _mm256_store_ps(d2 + j, acc);
        // padding lanes (j + lane >= count) do not take part; a NaN lane keeps vmin
        const __m256 valid = _mm256_cmp_ps(lane, _mm256_set1_ps((float)(count - j)), _CMP_LT_OQ);
        vmin = _mm256_blendv_ps(vmin, _mm256_min_ps(acc, vmin), valid);
    }
    return first_index_of_min(x86::avx2::hmin(vmin), d2);
}

const grid_lanes grid_lanes_avx2 = {nearest_run_dispatch<v8f, v8i>, round_levels_lanes<v8f, v8i>, level_sums_lanes<v8f>, 3};

}  // namespace ggq
