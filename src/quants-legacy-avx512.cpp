// AVX-512 versions of the q4_0 and q8_0 reference quantizers; same operation order as the
// reference, so the same bytes. Built with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mf16c.
#include "quants-legacy.h"

#include <immintrin.h>

namespace ggq {

namespace {

inline __m512 abs_ps(__m512 v) { return _mm512_abs_ps(v); }

inline uint16_t to_half(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

// roundf(): half-way cases away from zero; x - trunc(x) is exact.
inline __m512 round_away_ps(__m512 x) {
    const __m512 t = _mm512_roundscale_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(x, t));
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1.0f)),
                                                           _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
    return _mm512_mask_add_ps(t, up, t, one);
}

}  // namespace

size_t quantize_q8_0_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float *) {
    const int64_t nb = nrows * n_per_row / QK8_0;
    auto * y = static_cast<block_q8_0 *>(dst);
    for (int64_t i = 0; i < nb; ++i, src += QK8_0) {
        const __m512 v0 = _mm512_loadu_ps(src);
        const __m512 v1 = _mm512_loadu_ps(src + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(abs_ps(v0), abs_ps(v1)));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_half(d);
        const __m512 vid = _mm512_set1_ps(id);
        // float -> int32 as cvttss2si does (0x80000000 for NaN/Inf), then the low byte, as the scalar cast
        _mm_storeu_si128((__m128i *)y[i].qs, _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(round_away_ps(_mm512_mul_ps(v0, vid)))));
        _mm_storeu_si128((__m128i *)(y[i].qs + 16), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(round_away_ps(_mm512_mul_ps(v1, vid)))));
    }
    return (size_t)nb * sizeof(block_q8_0);
}

size_t quantize_q4_0_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (imatrix != nullptr) {
        return quantize_q4_0(src, dst, nrows, n_per_row, imatrix);
    }
    const int64_t nb = nrows * n_per_row / QK4_0;
    auto * y = static_cast<block_q4_0 *>(dst);
    for (int64_t i = 0; i < nb; ++i, src += QK4_0) {
        const __m512 v0 = _mm512_loadu_ps(src);
        const __m512 v1 = _mm512_loadu_ps(src + 16);
        const __m512 a0 = abs_ps(v0), a1 = abs_ps(v1);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
        // the reference keeps the first value of largest magnitude, and +0 when all are zero
        float max = 0.0f;
        if (amax > 0.0f) {
            const __m512 vmax = _mm512_set1_ps(amax);
            const uint32_t hit = (uint32_t)_mm512_cmp_ps_mask(a0, vmax, _CMP_EQ_OQ) |
                                 (uint32_t)_mm512_cmp_ps_mask(a1, vmax, _CMP_EQ_OQ) << 16;
            max = src[__builtin_ctz(hit)];
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_half(d);
        const __m512 vid = _mm512_set1_ps(id);
        const __m512 bias = _mm512_set1_ps(8.5f);
        const __m512i fifteen = _mm512_set1_epi32(15);
        // MIN(15, (int8_t)(x*id + 8.5f)) as in the reference: sign-extend the low byte, then clamp
        auto q = [&](__m512 v) {
            const __m512i i32 = _mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(v, vid), bias));
            return _mm512_min_epi32(fifteen, _mm512_srai_epi32(_mm512_slli_epi32(i32, 24), 24));
        };
        const __m512i lo = q(v0);
        const __m512i hi = q(v1);
        _mm_storeu_si128((__m128i *)y[i].qs, _mm512_cvtepi32_epi8(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4))));
    }
    return (size_t)nb * sizeof(block_q4_0);
}

}  // namespace ggq
