// AVX-512 versions of the q4_0 and q8_0 reference quantizers; same operations as the reference, so
// the same bytes. Blocks go in groups of 16: the per-block scalar steps (scale division, reciprocal,
// fp16 rounding) run as one 16-lane vector operation per group. Built with AVX-512 F/BW/VL/DQ + F16C.
#include "quants-k-avx.h"
#include "quants-legacy.h"

#include <immintrin.h>

namespace ggq {

namespace {

constexpr int k_group = 16;

// roundf() (halves away from zero) for the float x: adding the largest float below 0.5 with x's
// sign and truncating gives the same integer for every float, ties included.
inline __m512i round_away_to_i32(__m512 x) {
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    const __m512 h = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(0.49999997f)), sign));
    return _mm512_cvttps_epi32(_mm512_add_ps(x, h));  // NaN/Inf give 0x80000000, as cvttss2si
}

// Per-block scales of a group from its 16 per-block numerators: d = num / div, id = d ? 1/d : 0,
// and d rounded to fp16 (round to nearest even, as the reference's conversion).
inline void group_scales(const float * num, float div, uint16_t * dh, float * id) {
    const __m512 d = _mm512_div_ps(_mm512_loadu_ps(num), _mm512_set1_ps(div));
    const __mmask16 nz = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    _mm512_storeu_ps(id, _mm512_maskz_div_ps(nz, _mm512_set1_ps(1.0f), d));
    _mm256_storeu_si256((__m256i *)dh, _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

inline void store_q8_0(const float * x, float id, block_q8_0 * y) {
    const __m512 vid = _mm512_set1_ps(id);
    // the reference stores roundf(x*id) through an int conversion: keep the low byte of the int32
    _mm_storeu_si128((__m128i *)y->qs, _mm512_cvtepi32_epi8(round_away_to_i32(_mm512_mul_ps(_mm512_loadu_ps(x), vid))));
    _mm_storeu_si128((__m128i *)(y->qs + 16), _mm512_cvtepi32_epi8(round_away_to_i32(_mm512_mul_ps(_mm512_loadu_ps(x + 16), vid))));
}

inline void store_q4_0(const float * x, float id, block_q4_0 * y) {
    const __m512 vid = _mm512_set1_ps(id);
    const __m512 bias = _mm512_set1_ps(8.5f);
    const __m512i fifteen = _mm512_set1_epi32(15);
    // MIN(15, (int8_t)(x*id + 8.5f)): sign-extend the low byte of the int32, then clamp
    auto q = [&](const float * p) {
        const __m512i i32 = _mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(p), vid), bias));
        return _mm512_min_epi32(fifteen, _mm512_srai_epi32(_mm512_slli_epi32(i32, 24), 24));
    };
    _mm_storeu_si128((__m128i *)y->qs, _mm512_cvtepi32_epi8(_mm512_or_si512(q(x), _mm512_slli_epi32(q(x + 16), 4))));
}

inline __m512 abs_max(const float * x) { return _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x)), _mm512_abs_ps(_mm512_loadu_ps(x + 16))); }

// The reference keeps the first value of largest magnitude, and +0 when all are zero.
inline float signed_max(const float * x, float amax) {
    if (!(amax > 0.0f)) {
        return 0.0f;
    }
    const __m512 vmax = _mm512_set1_ps(amax);
    const uint32_t hit = (uint32_t)_mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x)), vmax, _CMP_EQ_OQ) |
                         (uint32_t)_mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16)), vmax, _CMP_EQ_OQ) << 16;
    return x[__builtin_ctz(hit)];
}

}  // namespace

size_t quantize_q8_0_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float *) {
    const int64_t nb = nrows * n_per_row / QK8_0;
    auto * y = static_cast<block_q8_0 *>(dst);
    alignas(64) float amax[k_group];
    alignas(64) float id[k_group];
    alignas(32) uint16_t dh[k_group];
    for (int64_t i = 0; i < nb; i += k_group) {
        const int n = nb - i < k_group ? (int)(nb - i) : k_group;
        const float * x = src + i * QK8_0;
        for (int b = 0; b < k_group; ++b) {
            amax[b] = b < n ? _mm512_reduce_max_ps(abs_max(x + b * QK8_0)) : 0.0f;
        }
        group_scales(amax, 127.0f, dh, id);
        for (int b = 0; b < n; ++b) {
            y[i + b].d = dh[b];
            store_q8_0(x + b * QK8_0, id[b], &y[i + b]);
        }
    }
    return (size_t)nb * sizeof(block_q8_0);
}

size_t quantize_q4_0_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (imatrix != nullptr) {
        return quantize_q4_0_imatrix_avx512(src, dst, nrows, n_per_row, imatrix);
    }
    const int64_t nb = nrows * n_per_row / QK4_0;
    auto * y = static_cast<block_q4_0 *>(dst);
    alignas(64) float max[k_group];
    alignas(64) float id[k_group];
    alignas(32) uint16_t dh[k_group];
    for (int64_t i = 0; i < nb; i += k_group) {
        const int n = nb - i < k_group ? (int)(nb - i) : k_group;
        const float * x = src + i * QK4_0;
        for (int b = 0; b < k_group; ++b) {
            max[b] = b < n ? signed_max(x + b * QK4_0, _mm512_reduce_max_ps(abs_max(x + b * QK4_0))) : 0.0f;
        }
        group_scales(max, -8.0f, dh, id);
        for (int b = 0; b < n; ++b) {
            y[i + b].d = dh[b];
            store_q4_0(x + b * QK4_0, id[b], &y[i + b]);
        }
    }
    return (size_t)nb * sizeof(block_q4_0);
}

}  // namespace ggq
