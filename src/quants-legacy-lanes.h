// Vector Q4_0 / Q8_0 quantizers and the weighted Q4_0..Q5_1 search: one body over W float lanes,
// W = 8 (quants-legacy-avx2.cpp) or 16 (quants-legacy-avx512.cpp).
//
// Why the bytes are the reference's: blocks go in groups of W, and the per-block scalar steps
// (scale division, reciprocal, fp16 rounding) run as one W-lane operation per group with the
// reference's IEEE operations; the values of a block are scaled, rounded and packed with the
// reference's operations too (the same multiply, the same add-and-truncate rounding, the low byte of
// the int32 as a C cast keeps it). Maxima are exact in any order. The weighted types run the K-quant
// lane searches (quants-k-lanes.h), which follow the scalar search lane by lane.
//
// Everything here except legacy_simd<W>'s members has internal linkage, so each ISA keeps its own
// copy, compiled with its own flags.
#pragma once

#include "quants-k-lanes.h"
#include "ggq-lanes-x86.h"
#include "quants-legacy.h"

#include <immintrin.h>

#include <type_traits>

namespace ggq::legacy {
namespace {

template <int W>
struct lanes;

#if defined(__AVX2__) && !defined(__AVX512F__)
// AVX2: a block of 32 values is four vectors.
template <>
struct lanes<8> {
    using isa = x86::avx2;

    // roundf() (halves away from zero) for the float x: adding the largest float below 0.5 with x's
    // sign and truncating gives the same integer for every float, ties included.
    static __m256i round_away_to_i32(__m256 x) {
        const __m256 h = _mm256_or_ps(_mm256_set1_ps(0.49999997f), _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
        return _mm256_cvttps_epi32(_mm256_add_ps(x, h));  // NaN/Inf give 0x80000000, as cvttss2si
    }

    // The scalar code keeps the low byte of the int32 conversion; so do these (no saturation).
    static __m256i low_byte(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi32(0xFF)); }

    // Sign-extends the low byte: the value of a C cast (int8_t)(int32 lane).
    static __m256i as_int8(__m256i v) { return _mm256_srai_epi32(_mm256_slli_epi32(v, 24), 24); }


    // Per-block scales of a group from its numerators: d = num / div, id = d ? 1/d : 0, d as fp16.
    static void group_scales(const float * num, float div, uint16_t * dh, float * id) {
        const __m256 d = _mm256_div_ps(_mm256_loadu_ps(num), _mm256_set1_ps(div));
        const __m256 nz = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ);
        _mm256_storeu_ps(id, _mm256_and_ps(nz, _mm256_div_ps(_mm256_set1_ps(1.0f), d)));
        _mm_storeu_si128((__m128i *)dh, _mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }



    static void store_q8_0(const float * x, float id, block_q8_0 * y) {
        const __m256 vid = _mm256_set1_ps(id);
        auto q = [&](int k) { return round_away_to_i32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid)); };
        _mm256_storeu_si256((__m256i *)y->qs, isa::pack_bytes(low_byte(q(0)), low_byte(q(1)), low_byte(q(2)), low_byte(q(3))));
    }

    static void store_q4_0(const float * x, float id, block_q4_0 * y) {
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
};

#endif

#if defined(__AVX512F__)
// AVX-512: a block of 32 values is two vectors; int32 -> int8 truncation is one instruction.
template <>
struct lanes<16> {
    using isa = x86::avx512;

    static __m512i round_away_to_i32(__m512 x) {  // as lanes<8>::round_away_to_i32
        const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
        const __m512 h = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(0.49999997f)), sign));
        return _mm512_cvttps_epi32(_mm512_add_ps(x, h));
    }

    static void group_scales(const float * num, float div, uint16_t * dh, float * id) {
        const __m512 d = _mm512_div_ps(_mm512_loadu_ps(num), _mm512_set1_ps(div));
        const __mmask16 nz = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        _mm512_storeu_ps(id, _mm512_maskz_div_ps(nz, _mm512_set1_ps(1.0f), d));
        _mm256_storeu_si256((__m256i *)dh, _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }



    static void store_q8_0(const float * x, float id, block_q8_0 * y) {
        const __m512 vid = _mm512_set1_ps(id);
        // the reference stores roundf(x*id) through an int conversion: keep the low byte of the int32
        _mm_storeu_si128((__m128i *)y->qs, _mm512_cvtepi32_epi8(round_away_to_i32(_mm512_mul_ps(_mm512_loadu_ps(x), vid))));
        _mm_storeu_si128((__m128i *)(y->qs + 16), _mm512_cvtepi32_epi8(round_away_to_i32(_mm512_mul_ps(_mm512_loadu_ps(x + 16), vid))));
    }

    static void store_q4_0(const float * x, float id, block_q4_0 * y) {
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
};
#endif

// The reference keeps the first value of largest magnitude, and +0 when all are zero.
template <int W>
float signed_max(const float * x) {
    float amax;
    return x86::max_by_magnitude32<typename lanes<W>::isa>(x, amax);
}

// Q8_0 (DIV = 127, scale numerator max |x|) and Q4_0 (DIV = -8, the signed value of largest
// magnitude): W blocks share one vector scale step, then each block is rounded and packed.
template <int W, class Block>
size_t quantize_unweighted(const float * src, void * dst, int64_t nrows, int64_t n_per_row) {
    constexpr bool q8 = std::is_same_v<Block, block_q8_0>;
    const int64_t nb = nrows * n_per_row / 32;
    auto * y = static_cast<Block *>(dst);
    alignas(64) float num[W];
    alignas(64) float id[W];
    alignas(32) uint16_t dh[W];
    for (int64_t i = 0; i < nb; i += W) {
        const int n = nb - i < W ? (int)(nb - i) : W;
        const float * x = src + i * 32;
        for (int b = 0; b < W; ++b) {
            num[b] = b >= n ? 0.0f : q8 ? lanes<W>::isa::abs_max32(x + b * 32) : signed_max<W>(x + b * 32);
        }
        lanes<W>::group_scales(num, q8 ? 127.0f : -8.0f, dh, id);
        for (int b = 0; b < n; ++b) {
            y[i + b].d = dh[b];
            if constexpr (q8) {
                lanes<W>::store_q8_0(x + b * 32, id[b], &y[i + b]);
            } else {
                lanes<W>::store_q4_0(x + b * 32, id[b], &y[i + b]);
            }
        }
    }
    return (size_t)nb * sizeof(Block);
}

// With importance weights the K-quant lane search; without, the vector path or the reference.
template <int W, class Block, int NMAX, bool AFFINE, chunk_quantize_t * Unweighted>
size_t quantize(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (imatrix) {
        return kq::kquants_w<W>::template legacy_weighted<Block, NMAX, AFFINE>(src, dst, nrows, n_per_row, imatrix);
    }
    return Unweighted(src, dst, nrows, n_per_row, imatrix);
}

template <int W>
size_t q4_0_unweighted(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float *) {
    return quantize_unweighted<W, block_q4_0>(src, dst, nrows, n_per_row);
}

}  // namespace
}  // namespace ggq::legacy

namespace ggq {

template <int W>
size_t legacy_simd<W>::q4_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return legacy::quantize<W, block_q4_0, 8, false, legacy::q4_0_unweighted<W>>(src, dst, nrows, n_per_row, imatrix);
}
template <int W>
size_t legacy_simd<W>::q4_1(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return legacy::quantize<W, block_q4_1, 15, true, quantize_q4_1>(src, dst, nrows, n_per_row, imatrix);
}
template <int W>
size_t legacy_simd<W>::q5_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return legacy::quantize<W, block_q5_0, 16, false, quantize_q5_0>(src, dst, nrows, n_per_row, imatrix);
}
template <int W>
size_t legacy_simd<W>::q5_1(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return legacy::quantize<W, block_q5_1, 31, true, quantize_q5_1>(src, dst, nrows, n_per_row, imatrix);
}
// ggml's q8_0 has no weighted variant: importance weights are accepted and ignored.
template <int W>
size_t legacy_simd<W>::q8_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float *) {
    return legacy::quantize_unweighted<W, block_q8_0>(src, dst, nrows, n_per_row);
}

}  // namespace ggq
