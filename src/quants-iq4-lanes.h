// The IQ4_NL / IQ4_XS quantizers written once over W float lanes: the 16 candidate scales of a
// block are one 16-lane vector F of the policy lanes<W> (W = 8: two halves, quants-iq-avx2.cpp;
// W = 16: one register, quants-iq-avx512.cpp). Everything but iq4_simd<W>'s members has internal
// linkage, so every instantiation stays local to its translation unit and its instruction set.
//
// Why the bytes equal the reference: the reference tries 16 candidate scales for each block of 32
// (a first guess and 15 steps of itry), each an independent sequence of float sums over j in
// order. Here the 16 candidates are the 16 lanes: lane t accumulates exactly the reference's sums
// for candidate t, in the same order, with the same (unfused) operations; then the scalar code
// picks among the candidates in the reference's order with the reference's comparisons. The code
// lookup (best_index_iq4nl) is a branch-free binary search with the same comparisons and the same
// tie rule.
//
// A policy P provides:
//   using F;  F load(const float *); F set1(float); F mul(F, F); F add(F, F); void store(float *, F)
//   F best_value(F al)                        -- kvalues_iq4nl[best_index_iq4nl(al)] per lane
//   void codes32(const float * xb, float id, uint8_t * q4)   -- 16 packed bytes of 32 codes
//   F sqrt(F)
#pragma once

#include "quants-iq-impl.h"
#include "quants-iq.h"
#include "ggq-lanes-x86.h"

#include <immintrin.h>

namespace ggq::iq4 {
namespace {

template <int W>
struct lanes;

#if defined(__AVX2__) && !defined(__AVX512F__)
template <>
struct lanes<8> {
    using isa = x86::avx2;
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

    static F sqrt(F a) { return {_mm256_sqrt_ps(a.lo), _mm256_sqrt_ps(a.hi)}; }
};
#endif

#if defined(__AVX512F__)
// F, load, set1, mul, add and store from x86::avx512
template <>
struct lanes<16> : x86::avx512 {
    using isa = x86::avx512;

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

    // _mm512_sqrt_ps trips -Wmaybe-uninitialized in GCC 12
    static F sqrt(F a) { return _mm512_maskz_sqrt_ps((__mmask16)0xFFFF, a); }
};
#endif

// Search weights of 32 values: qw * sqrt(sigma2 + x^2) with importance weights, else x^2.
template <class P>
void weights32(const float * xb, const float * qw, float sigma2, float * w) {
    for (int h = 0; h < 32; h += 16) {
        const typename P::F x = P::load(xb + h);
        const typename P::F x2 = P::mul(x, x);
        P::store(w + h, qw ? P::mul(P::load(qw + h), P::sqrt(P::add(P::set1(sigma2), x2))) : x2);
    }
}

template <int W, class P = lanes<W>>
float block_scale_simd(const float * xb, const float * weight) {
    float amax;  // the reference's scan for the signed value of largest magnitude, as Q4_0's
    const float max = x86::max_by_magnitude32<typename P::isa>(xb, amax);
    if (amax < k_group_max_eps) {
        return 0.0f;
    }
    const int8_t * values = kvalues_iq4nl;
    alignas(64) float ids[16];
    const float d0 = -max / values[0];
    ids[0] = 1 / d0;
    for (int t = 1; t < 16; ++t) {
        ids[t] = (t - 8 + values[0]) / max;  // itry = t - 8 in -7..7
    }
    const typename P::F id = P::load(ids);
    typename P::F sumqx = P::set1(0.0f), sumq2 = P::set1(0.0f);
    for (int j = 0; j < 32; ++j) {
        const typename P::F xj = P::set1(xb[j]);
        const typename P::F q = P::best_value(P::mul(id, xj));
        const typename P::F wq = P::mul(P::set1(weight[j]), q);
        sumqx = P::add(sumqx, P::mul(wq, xj));
        sumq2 = P::add(sumq2, P::mul(wq, q));
    }
    alignas(64) float sx[16], s2[16];
    P::store(sx, sumqx);
    P::store(s2, sumq2);
    float d = s2[0] > 0 ? sx[0] / s2[0] : 0.f;
    float best = d * sx[0];
    for (int t = 1; t < 16; ++t) {
        if (s2[t] > 0 && sx[t] * sx[t] > best * s2[t]) {
            d = sx[t] / s2[t];
            best = d * sx[t];
        }
    }
    return d;
}

template <int W, class P = lanes<W>>
size_t quantize_iq4_nl_simd(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    const int64_t nb = n_per_row / QK4_NL;
    auto * y = static_cast<block_iq4_nl *>(dst);
    alignas(64) float weight[32];
    for (int64_t r = 0; r < nrows; ++r, src += n_per_row, y += nb) {
        for (int64_t i = 0; i < nb; ++i) {
            const float * x = src + QK4_NL * i;
            const float * qw = imatrix ? imatrix + QK4_NL * i : nullptr;
            weights32<P>(x, qw, qw ? block_sigma2(x, 32) : 0.0f, weight);
            const float scale = block_scale_simd<W>(x, weight);
            y[i].d = fp32_to_fp16(scale);
            P::codes32(x, scale ? 1 / scale : 0, y[i].qs);
        }
    }
    return (size_t)(nrows * nb) * sizeof(block_iq4_nl);
}

template <int W, class P = lanes<W>>
size_t quantize_iq4_xs_simd(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    const int64_t nb = n_per_row / QK_K;
    auto * y = static_cast<block_iq4_xs *>(dst);
    alignas(64) float weight[32];
    float scales[QK_K / 32];
    for (int64_t r = 0; r < nrows; ++r, src += n_per_row, y += nb) {
        for (int64_t i = 0; i < nb; ++i) {
            const float * x = src + QK_K * i;
            const float * qw = imatrix ? imatrix + QK_K * i : nullptr;
            const float sigma2 = qw ? block_sigma2(x, QK_K) : 0.0f;
            float max_scale = 0, amax_scale = 0;
            for (int ib = 0; ib < QK_K / 32; ++ib) {
                weights32<P>(x + 32 * ib, qw ? qw + 32 * ib : nullptr, sigma2, weight);
                scales[ib] = block_scale_simd<W>(x + 32 * ib, weight);
                const float abs_d = std::fabs(scales[ib]);
                if (abs_d > amax_scale) {
                    amax_scale = abs_d;
                    max_scale = scales[ib];
                }
            }
            encode_xs(x, y + i, scales, max_scale, [](const float * xb, float idl, uint8_t * q4) { P::codes32(xb, idl, q4); });
        }
    }
    return (size_t)(nrows * nb) * sizeof(block_iq4_xs);
}

}  // namespace
}  // namespace ggq::iq4

namespace ggq {

template <int W>
size_t iq4_simd<W>::iq4_nl(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return iq4::quantize_iq4_nl_simd<W>(src, dst, nrows, n_per_row, imatrix);
}
template <int W>
size_t iq4_simd<W>::iq4_xs(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return iq4::quantize_iq4_xs_simd<W>(src, dst, nrows, n_per_row, imatrix);
}

}  // namespace ggq
