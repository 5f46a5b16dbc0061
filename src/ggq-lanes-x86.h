// x86 vector leaves that several families' lanes<W> policies share (quants-legacy-lanes.h,
// quants-iq4-lanes.h, quants-iq1-lanes.h, quants-iq-grid-*.cpp, mlx-quant-lanes.h). Only exact operations: single IEEE
// arithmetic operations, absolute values, maxima, minima (the same in any order for finite values),
// byte packing. Internal linkage, and each part is compiled only in the translation units of its
// instruction set.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace ggq::x86 {
namespace {

#if defined(__AVX2__) && !defined(__AVX512F__)
struct avx2 {
    // one float vector, for the policies whose F is one register
    using F = __m256;
    static F load(const float * p) { return _mm256_loadu_ps(p); }
    static void store(float * p, F v) { _mm256_storeu_ps(p, v); }
    static F set1(float v) { return _mm256_set1_ps(v); }
    static F add(F a, F b) { return _mm256_add_ps(a, b); }
    static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F div(F a, F b) { return _mm256_div_ps(a, b); }

    static __m256 abs(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

    static float hmax(__m256 v) {
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        return _mm_cvtss_f32(m);
    }

    static float hmin(__m256 v) {
        __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        m = _mm_min_ps(m, _mm_movehl_ps(m, m));
        m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
        return _mm_cvtss_f32(m);
    }

    // 32 int32 lanes, each 0..255, in order -> their 32 bytes in order.
    static __m256i pack_bytes(__m256i a, __m256i b, __m256i c, __m256i d) {
        const __m256i ab = _mm256_packus_epi32(a, b);
        const __m256i cd = _mm256_packus_epi32(c, d);
        const __m256i abcd = _mm256_packus_epi16(ab, cd);
        // packs work per 128-bit lane: restore the element order
        return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    }

    // max |x[j]| of 32 values
    static float abs_max32(const float * x) {
        const __m256 v = _mm256_max_ps(_mm256_max_ps(abs(_mm256_loadu_ps(x)), abs(_mm256_loadu_ps(x + 8))),
                                       _mm256_max_ps(abs(_mm256_loadu_ps(x + 16)), abs(_mm256_loadu_ps(x + 24))));
        return hmax(v);
    }

    // bit j set where |x[j]| == amax, for 32 values
    static uint32_t abs_hits32(const float * x, float amax) {
        const __m256 vmax = _mm256_set1_ps(amax);
        uint32_t hit = 0;
        for (int k = 0; k < 4; ++k) {
            hit |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(abs(_mm256_loadu_ps(x + 8 * k)), vmax, _CMP_EQ_OQ)) << (8 * k);
        }
        return hit;
    }
};
#endif

#if defined(__AVX2__)
// 32 four-bit codes (one per byte) -> 16 bytes, byte i = q[2i] | q[2i+1] << 4: multiply-add adjacent
// bytes by (1, 16). AVX2, also in the AVX-512 units.
inline void pack_nibble_pairs32(const uint8_t * q, uint8_t * dst) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)q);
    const __m256i w16 = _mm256_maddubs_epi16(v, _mm256_set1_epi16(0x1001));
    const __m256i b8 = _mm256_packus_epi16(w16, w16);
    const __m256i ordered = _mm256_permute4x64_epi64(b8, 0x08);  // lanes 0 and 2
    _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(ordered));
}
#endif

#if defined(__AVX512F__)
struct avx512 {
    using F = __m512;
    static F load(const float * p) { return _mm512_loadu_ps(p); }
    static void store(float * p, F v) { _mm512_storeu_ps(p, v); }
    static F set1(float v) { return _mm512_set1_ps(v); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F div(F a, F b) { return _mm512_div_ps(a, b); }

    // (extracts, not _mm512_reduce_min_ps: GCC 12 warns on that)
    static float hmin(F v) {
        const __m256 h = _mm256_min_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
        __m128 m = _mm_min_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        m = _mm_min_ps(m, _mm_movehl_ps(m, m));
        m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
        return _mm_cvtss_f32(m);
    }

    static float abs_max32(const float * x) {
        return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x)), _mm512_abs_ps(_mm512_loadu_ps(x + 16))));
    }

    static uint32_t abs_hits32(const float * x, float amax) {
        const __m512 vmax = _mm512_set1_ps(amax);
        return (uint32_t)_mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x)), vmax, _CMP_EQ_OQ) |
               (uint32_t)_mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16)), vmax, _CMP_EQ_OQ) << 16;
    }
};
#endif

#if defined(__AVX2__)
// max_by_magnitude (ggq-kernel.h) of a block of 32 on the vector leaves of Isa: max |x[j]| (exact in
// any order) into amax, and the first x[j] reaching it; +0 when all are zero.
template <class Isa>
float max_by_magnitude32(const float * x, float & amax) {
    amax = Isa::abs_max32(x);
    return amax > 0.0f ? x[__builtin_ctz(Isa::abs_hits32(x, amax))] : 0.0f;
}
#endif

}  // namespace
}  // namespace ggq::x86
