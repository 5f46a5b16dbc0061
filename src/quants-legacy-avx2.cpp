// AVX2 versions of the q4_0 and q8_0 reference quantizers. Each block goes through exactly the
// reference's operations (max is exact in any order; one rounded multiply, then one rounded add),
// so the bytes equal quantize_row_<t>_ref. Built with -mavx2 -mf16c and -ffp-contract=off.
#include "quants-legacy.h"

#include <immintrin.h>

#include <cstring>

namespace ggq {

namespace {

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

inline uint16_t to_half(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

// roundf(): half-way cases away from zero. x - trunc(x) is exact, so the comparison is exact.
inline __m256 round_away_ps(__m256 x) {
    const __m256 t = _mm256_round_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = abs_ps(_mm256_sub_ps(x, t));
    const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
    return _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
}

// The scalar code converts float -> int32 (cvttss2si; 0x80000000 for NaN/Inf and out-of-range
// values) and keeps the low byte. Same here: low bytes of the int32 lanes, no saturation.
inline __m256i low_byte(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi32(0xFF)); }

// Sign-extends the low byte: the value of a C cast (int8_t)(int32 lane).
inline __m256i as_int8(__m256i v) { return _mm256_srai_epi32(_mm256_slli_epi32(v, 24), 24); }

// 32 int32 lanes (in order) -> their 32 low bytes.
inline __m256i pack_low_bytes(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packus_epi32(low_byte(a), low_byte(b));
    const __m256i cd = _mm256_packus_epi32(low_byte(c), low_byte(d));
    const __m256i abcd = _mm256_packus_epi16(ab, cd);
    // packs work per 128-bit lane: restore the element order
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

}  // namespace

size_t quantize_q8_0_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float *) {
    const int64_t nb = nrows * n_per_row / QK8_0;
    auto * y = static_cast<block_q8_0 *>(dst);
    for (int64_t i = 0; i < nb; ++i, src += QK8_0) {
        const __m256 v0 = _mm256_loadu_ps(src);
        const __m256 v1 = _mm256_loadu_ps(src + 8);
        const __m256 v2 = _mm256_loadu_ps(src + 16);
        const __m256 v3 = _mm256_loadu_ps(src + 24);
        const __m256 m = _mm256_max_ps(_mm256_max_ps(abs_ps(v0), abs_ps(v1)), _mm256_max_ps(abs_ps(v2), abs_ps(v3)));
        const float amax = hmax_ps(m);
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_half(d);
        const __m256 vid = _mm256_set1_ps(id);
        const __m256i q = pack_low_bytes(_mm256_cvttps_epi32(round_away_ps(_mm256_mul_ps(v0, vid))),
                                         _mm256_cvttps_epi32(round_away_ps(_mm256_mul_ps(v1, vid))),
                                         _mm256_cvttps_epi32(round_away_ps(_mm256_mul_ps(v2, vid))),
                                         _mm256_cvttps_epi32(round_away_ps(_mm256_mul_ps(v3, vid))));
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
    }
    return (size_t)nb * sizeof(block_q8_0);
}

size_t quantize_q4_0_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (imatrix != nullptr) {
        return quantize_q4_0(src, dst, nrows, n_per_row, imatrix);
    }
    const int64_t nb = nrows * n_per_row / QK4_0;
    auto * y = static_cast<block_q4_0 *>(dst);
    for (int64_t i = 0; i < nb; ++i, src += QK4_0) {
        const __m256 v0 = _mm256_loadu_ps(src);
        const __m256 v1 = _mm256_loadu_ps(src + 8);
        const __m256 v2 = _mm256_loadu_ps(src + 16);
        const __m256 v3 = _mm256_loadu_ps(src + 24);
        const __m256 a0 = abs_ps(v0), a1 = abs_ps(v1), a2 = abs_ps(v2), a3 = abs_ps(v3);
        const float amax = hmax_ps(_mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3)));
        // the reference keeps the first value of largest magnitude, and +0 when all are zero
        float max = 0.0f;
        if (amax > 0.0f) {
            const __m256 vmax = _mm256_set1_ps(amax);
            const uint32_t hit = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a0, vmax, _CMP_EQ_OQ)) |
                                 (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a1, vmax, _CMP_EQ_OQ)) << 8 |
                                 (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a2, vmax, _CMP_EQ_OQ)) << 16 |
                                 (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a3, vmax, _CMP_EQ_OQ)) << 24;
            max = src[__builtin_ctz(hit)];
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_half(d);
        const __m256 vid = _mm256_set1_ps(id);
        const __m256 bias = _mm256_set1_ps(8.5f);
        const __m256i fifteen = _mm256_set1_epi32(15);
        // MIN(15, (int8_t)(x*id + 8.5f)) as in the reference, then the byte lo | hi << 4
        auto q = [&](__m256 v) {
            return _mm256_min_epi32(fifteen, as_int8(_mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v, vid), bias))));
        };
        const __m256i lo0 = q(v0), lo1 = q(v1);
        const __m256i hi0 = _mm256_slli_epi32(q(v2), 4), hi1 = _mm256_slli_epi32(q(v3), 4);
        const __m256i p0 = low_byte(_mm256_or_si256(lo0, hi0));
        const __m256i p1 = low_byte(_mm256_or_si256(lo1, hi1));
        // 16 int32 in 0..255 -> 16 bytes
        const __m256i w = _mm256_packus_epi32(p0, p1);               // u16, lanes interleaved
        const __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        // after the two packs the order is p0[0..3] p1[0..3] p0[4..7] p1[4..7]
        const __m128i fixed = _mm_shuffle_epi32(b, _MM_SHUFFLE(3, 1, 2, 0));
        _mm_storeu_si128((__m128i *)y[i].qs, fixed);
    }
    return (size_t)nb * sizeof(block_q4_0);
}

}  // namespace ggq
