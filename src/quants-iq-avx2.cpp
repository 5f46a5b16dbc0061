// AVX2 versions of the IQ4_NL / IQ4_XS quantizers: the 16 candidate scales of a block run as two
// 8-lane halves (see quants-iq4-simd.h for why the bytes equal the reference's).
#include "quants-iq4-simd.h"

#include <immintrin.h>

namespace ggq {

namespace {

struct avx2_policy {
    struct F {
        __m256 lo, hi;
    };

    static F load(const float * p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
    static F set1(float v) { return {_mm256_set1_ps(v), _mm256_set1_ps(v)}; }
    static F mul(F a, F b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
    static F add(F a, F b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
    static void store(float * p, F v) {
        _mm256_storeu_ps(p, v.lo);
        _mm256_storeu_ps(p + 8, v.hi);
    }

    // 16-entry table lookup: two 8-entry permutes, chosen by bit 3 of the index.
    static __m256 lut16(__m256i idx, __m256 t0, __m256 t1) {
        const __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
        return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, idx), _mm256_permutevar8x32_ps(t1, idx), sel);
    }

    static __m256 values0() { return _mm256_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10); }
    static __m256 values1() { return _mm256_setr_ps(1, 13, 25, 38, 53, 69, 89, 113); }
    // values[i + 1]; the last lane is never used for an in-range x
    static __m256 next0() { return _mm256_setr_ps(-104, -83, -65, -49, -35, -22, -10, 1); }
    static __m256 next1() { return _mm256_setr_ps(13, 25, 38, 53, 69, 89, 113, 127); }

    // best_index_iq4nl per lane; same search as the AVX-512 version (largest i with
    // !(al < values[i]), then the nearer neighbour, the upper one on a tie, at most 15).
    static __m256i best_index8(__m256 al) {
        const __m256 v0 = values0(), v1 = values1();
        __m256i idx = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(al, _mm256_set1_ps(kvalues_iq4nl[8]), _CMP_NLT_UQ)),
                                       _mm256_set1_epi32(8));
        for (int step = 4; step >= 1; step /= 2) {
            const __m256i cand = _mm256_add_epi32(idx, _mm256_set1_epi32(step));
            const __m256 up = _mm256_cmp_ps(al, lut16(cand, v0, v1), _CMP_NLT_UQ);
            idx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(idx), _mm256_castsi256_ps(cand), up));
        }
        const __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
        const __m256 lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(v0, idx), _mm256_permutevar8x32_ps(v1, idx), sel);
        const __m256 hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(next0(), idx), _mm256_permutevar8x32_ps(next1(), idx), sel);
        const __m256 take_lo = _mm256_cmp_ps(_mm256_sub_ps(al, lo), _mm256_sub_ps(hi, al), _CMP_LT_OQ);
        idx = _mm256_add_epi32(idx, _mm256_andnot_si256(_mm256_castps_si256(take_lo), _mm256_set1_epi32(1)));
        return _mm256_min_epi32(idx, _mm256_set1_epi32(15));
    }

    static F best_value(F al) {
        const __m256 v0 = values0(), v1 = values1();
        return {lut16(best_index8(al.lo), v0, v1), lut16(best_index8(al.hi), v0, v1)};
    }

    static void codes32(const float * xb, float id, uint8_t * q4) {
        const __m256 vid = _mm256_set1_ps(id);
        auto code = [&](int o) { return best_index8(_mm256_mul_ps(vid, _mm256_loadu_ps(xb + o))); };
        const __m256i a = _mm256_or_si256(code(0), _mm256_slli_epi32(code(16), 4));  // bytes 0..7
        const __m256i b = _mm256_or_si256(code(8), _mm256_slli_epi32(code(24), 4));  // bytes 8..15
        const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);  // a0..7 b0..7 as u16
        _mm_storeu_si128((__m128i *)q4, _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
    }

    static float abs_max32(const float * xb, float * max) {
        const __m256 sign = _mm256_set1_ps(-0.0f);
        __m256 a[4];
        for (int k = 0; k < 4; ++k) a[k] = _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + 8 * k));
        __m256 m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        const float amax = _mm_cvtss_f32(m4);
        const __m256 vmax = _mm256_set1_ps(amax);
        uint32_t hit = 0;
        for (int k = 0; k < 4; ++k) hit |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a[k], vmax, _CMP_EQ_OQ)) << (8 * k);
        // the reference starts from +0 and keeps the first strictly larger |x|
        *max = amax > 0.0f ? xb[__builtin_ctz(hit)] : 0.0f;
        return amax;
    }

    static void weights32(const float * xb, const float * qw, float sigma2, float * w) {
        for (int h = 0; h < 32; h += 8) {
            const __m256 x = _mm256_loadu_ps(xb + h);
            const __m256 x2 = _mm256_mul_ps(x, x);
            if (qw) {
                _mm256_storeu_ps(w + h, _mm256_mul_ps(_mm256_loadu_ps(qw + h), _mm256_sqrt_ps(_mm256_add_ps(_mm256_set1_ps(sigma2), x2))));
            } else {
                _mm256_storeu_ps(w + h, x2);
            }
        }
    }
};

}  // namespace

size_t quantize_iq4_nl_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return iq4::quantize_iq4_nl_simd<avx2_policy>(src, dst, nrows, n_per_row, imatrix);
}

size_t quantize_iq4_xs_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return iq4::quantize_iq4_xs_simd<avx2_policy>(src, dst, nrows, n_per_row, imatrix);
}

}  // namespace ggq
