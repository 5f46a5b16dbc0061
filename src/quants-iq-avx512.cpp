// AVX-512 versions of the IQ4_NL / IQ4_XS quantizers: the 16 candidate scales of a block run as the
// 16 lanes of one register (see quants-iq4-simd.h for why the bytes equal the reference's).
#include "quants-iq4-simd.h"

#include <immintrin.h>

namespace ggq {

namespace {

struct avx512_policy {
    using F = __m512;

    static F load(const float * p) { return _mm512_loadu_ps(p); }
    static F set1(float v) { return _mm512_set1_ps(v); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static void store(float * p, F v) { _mm512_storeu_ps(p, v); }

    static F values() {
        return _mm512_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
    }
    // values[i + 1]; the last lane is never used for an in-range x
    static F values_next() {
        return _mm512_setr_ps(-104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113, 127);
    }

    // best_index_iq4nl per lane. The search keeps the largest i with !(al < values[i]) (a NaN
    // compares true, so it ends on 15 as the reference's search does); then the nearer of
    // values[i] and values[i+1], the upper one on a tie, and at most 15. Below values[0] the
    // search stays on 0 and the lower neighbour wins, as the reference's first test.
    static __m512i best_index(F al) {
        const F vals = values();
        const __m512i one = _mm512_set1_epi32(1);
        __m512i idx = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(al, _mm512_set1_ps(kvalues_iq4nl[8]), _CMP_NLT_UQ), _mm512_set1_epi32(8));
        for (int step = 4; step >= 1; step /= 2) {
            const __m512i cand = _mm512_add_epi32(idx, _mm512_set1_epi32(step));
            const __mmask16 up = _mm512_cmp_ps_mask(al, _mm512_permutexvar_ps(cand, vals), _CMP_NLT_UQ);
            idx = _mm512_mask_mov_epi32(idx, up, cand);
        }
        const F lo = _mm512_permutexvar_ps(idx, vals);
        const F hi = _mm512_permutexvar_ps(idx, values_next());
        const __mmask16 take_lo = _mm512_cmp_ps_mask(_mm512_sub_ps(al, lo), _mm512_sub_ps(hi, al), _CMP_LT_OQ);
        idx = _mm512_mask_add_epi32(idx, (__mmask16)~take_lo, idx, one);
        return _mm512_min_epi32(idx, _mm512_set1_epi32(15));
    }

    static F best_value(F al) { return _mm512_permutexvar_ps(best_index(al), values()); }

    static void codes32(const float * xb, float id, uint8_t * q4) {
        const F vid = _mm512_set1_ps(id);
        const __m512i lo = best_index(_mm512_mul_ps(vid, _mm512_loadu_ps(xb)));
        const __m512i hi = best_index(_mm512_mul_ps(vid, _mm512_loadu_ps(xb + 16)));
        _mm_storeu_si128((__m128i *)q4, _mm512_cvtepi32_epi8(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4))));
    }

    static float abs_max32(const float * xb, float * max) {
        const F a0 = _mm512_abs_ps(_mm512_loadu_ps(xb));
        const F a1 = _mm512_abs_ps(_mm512_loadu_ps(xb + 16));
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
        const F vmax = _mm512_set1_ps(amax);
        const uint32_t hit = (uint32_t)_mm512_cmp_ps_mask(a0, vmax, _CMP_EQ_OQ) | (uint32_t)_mm512_cmp_ps_mask(a1, vmax, _CMP_EQ_OQ) << 16;
        // the reference starts from +0 and keeps the first strictly larger |x|
        *max = amax > 0.0f ? xb[__builtin_ctz(hit)] : 0.0f;
        return amax;
    }

    static void weights32(const float * xb, const float * qw, float sigma2, float * w) {
        for (int h = 0; h < 32; h += 16) {
            const F x = _mm512_loadu_ps(xb + h);
            const F x2 = _mm512_mul_ps(x, x);
            if (qw) {
                _mm512_storeu_ps(w + h, _mm512_mul_ps(_mm512_loadu_ps(qw + h), _mm512_sqrt_ps(_mm512_add_ps(_mm512_set1_ps(sigma2), x2))));
            } else {
                _mm512_storeu_ps(w + h, x2);
            }
        }
    }
};

}  // namespace

size_t quantize_iq4_nl_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return iq4::quantize_iq4_nl_simd<avx512_policy>(src, dst, nrows, n_per_row, imatrix);
}

size_t quantize_iq4_xs_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return iq4::quantize_iq4_xs_simd<avx512_policy>(src, dst, nrows, n_per_row, imatrix);
}

}  // namespace ggq
