// AVX2 versions of the q4_0 and q8_0 reference quantizers; same operations as the reference, so the
// same bytes. Blocks go in groups of 8: the per-block scalar steps (scale division, reciprocal,
// fp16 rounding) run as one 8-lane vector operation per group. Built with -mavx2 -mf16c.
#include "quants-k-avx.h"
#include "quants-legacy.h"

#include <immintrin.h>

namespace ggq {

namespace {

constexpr int k_group = 8;

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

// roundf() (halves away from zero) for the float x: adding the largest float below 0.5 with x's
// sign and truncating gives the same integer for every float, ties included.
inline __m256i round_away_to_i32(__m256 x) {
    const __m256 h = _mm256_or_ps(_mm256_set1_ps(0.49999997f), _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
    return _mm256_cvttps_epi32(_mm256_add_ps(x, h));  // NaN/Inf give 0x80000000, as cvttss2si
}

// The scalar code keeps the low byte of the int32 conversion; so do these (no saturation).
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

// Per-block scales of a group from its 8 numerators: d = num / div, id = d ? 1/d : 0, d as fp16.
inline void group_scales(const float * num, float div, uint16_t * dh, float * id) {
    const __m256 d = _mm256_div_ps(_mm256_loadu_ps(num), _mm256_set1_ps(div));
    const __m256 nz = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ);
    _mm256_storeu_ps(id, _mm256_and_ps(nz, _mm256_div_ps(_mm256_set1_ps(1.0f), d)));
    _mm_storeu_si128((__m128i *)dh, _mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

inline __m256 abs_max(const float * x) {
    return _mm256_max_ps(_mm256_max_ps(abs_ps(_mm256_loadu_ps(x)), abs_ps(_mm256_loadu_ps(x + 8))),
                         _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + 16)), abs_ps(_mm256_loadu_ps(x + 24))));
}

// The reference keeps the first value of largest magnitude, and +0 when all are zero.
inline float signed_max(const float * x, float amax) {
    if (!(amax > 0.0f)) {
        return 0.0f;
    }
    const __m256 vmax = _mm256_set1_ps(amax);
    uint32_t hit = 0;
    for (int k = 0; k < 4; ++k) {
        hit |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * k)), vmax, _CMP_EQ_OQ)) << (8 * k);
    }
    return x[__builtin_ctz(hit)];
}

inline void store_q8_0(const float * x, float id, block_q8_0 * y) {
    const __m256 vid = _mm256_set1_ps(id);
    auto q = [&](int k) { return round_away_to_i32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid)); };
    _mm256_storeu_si256((__m256i *)y->qs, pack_low_bytes(q(0), q(1), q(2), q(3)));
}

inline void store_q4_0(const float * x, float id, block_q4_0 * y) {
    const __m256 vid = _mm256_set1_ps(id);
    const __m256 bias = _mm256_set1_ps(8.5f);
    const __m256i fifteen = _mm256_set1_epi32(15);
    // MIN(15, (int8_t)(x*id + 8.5f)) as in the reference, then the byte lo | hi << 4
    auto q = [&](int k) {
        return _mm256_min_epi32(fifteen, as_int8(_mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid), bias))));
    };
    const __m256i p0 = low_byte(_mm256_or_si256(q(0), _mm256_slli_epi32(q(2), 4)));
    const __m256i p1 = low_byte(_mm256_or_si256(q(1), _mm256_slli_epi32(q(3), 4)));
    // 16 int32 in 0..255 -> 16 bytes; after the two packs the order is p0[0..3] p1[0..3] p0[4..7] p1[4..7]
    const __m256i w = _mm256_packus_epi32(p0, p1);
    const __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storeu_si128((__m128i *)y->qs, _mm_shuffle_epi32(b, _MM_SHUFFLE(3, 1, 2, 0)));
}

}  // namespace

size_t quantize_q8_0_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float *) {
    const int64_t nb = nrows * n_per_row / QK8_0;
    auto * y = static_cast<block_q8_0 *>(dst);
    alignas(32) float amax[k_group];
    alignas(32) float id[k_group];
    alignas(16) uint16_t dh[k_group];
    for (int64_t i = 0; i < nb; i += k_group) {
        const int n = nb - i < k_group ? (int)(nb - i) : k_group;
        const float * x = src + i * QK8_0;
        for (int b = 0; b < k_group; ++b) {
            amax[b] = b < n ? hmax_ps(abs_max(x + b * QK8_0)) : 0.0f;
        }
        group_scales(amax, 127.0f, dh, id);
        for (int b = 0; b < n; ++b) {
            y[i + b].d = dh[b];
            store_q8_0(x + b * QK8_0, id[b], &y[i + b]);
        }
    }
    return (size_t)nb * sizeof(block_q8_0);
}

size_t quantize_q4_0_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (imatrix != nullptr) {
        return quantize_q4_0_imatrix_avx2(src, dst, nrows, n_per_row, imatrix);
    }
    const int64_t nb = nrows * n_per_row / QK4_0;
    auto * y = static_cast<block_q4_0 *>(dst);
    alignas(32) float max[k_group];
    alignas(32) float id[k_group];
    alignas(16) uint16_t dh[k_group];
    for (int64_t i = 0; i < nb; i += k_group) {
        const int n = nb - i < k_group ? (int)(nb - i) : k_group;
        const float * x = src + i * QK4_0;
        for (int b = 0; b < k_group; ++b) {
            max[b] = b < n ? signed_max(x + b * QK4_0, hmax_ps(abs_max(x + b * QK4_0))) : 0.0f;
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
