// Vector row kernels for the MLX modes, one body over W float lanes (lanes<W> holds the
// instruction-set leaves); compiled in mlx-quant-avx2.cpp (W = 8) and mlx-quant-avx512.cpp (W = 16),
// which instantiate mlx_simd<W>.
//
// Why the bytes are the scalar kernels' (mlx-quant.cpp): every lane runs the same operations.
// Division, nearest-even rounding and the float16 conversions (F16C) are exact IEEE operations and
// the bfloat16 rounding is the same integer arithmetic, so the codes are identical; minima and
// maxima are exact in any order; groups with non-finite values or |x / scale| >= 8 take the
// scalar path. No fused operations are used.
//
// Everything but mlx_simd<W>'s members has internal linkage, so each ISA keeps its own copy.
#pragma once

#include "ggq-lanes-x86.h"
#include "mlx-quant-impl.h"

#include <immintrin.h>

#include <cstring>
#include <limits>

namespace ggq::mq {
namespace {

// The arithmetic leaves both widths share, through GCC's vector extensions on the intrinsic
// types (the same IEEE instructions: a / b is divps). Minima and maxima stay intrinsics in lanes<W>:
// GCC lowers a vector a < b ? a : b to a compare and a blend.
template <class V>
struct lane_ops {
    using F = V;
    typedef uint32_t U __attribute__((vector_size(sizeof(V))));

    static F load(const float * p) {
        F v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    static F set1(float v) { return F{} + v; }
    static F div(F a, F b) { return a / b; }
    static F mul(F a, F b) { return a * b; }
    static F sub(F a, F b) { return a - b; }
    static void store(float * p, F v) { std::memcpy(p, &v, sizeof v); }

    // bfloat16 rounding (nearest even) of finite lanes, kept as float32
    static F round_bf16(F v) {
        const U u = (U)v;
        return (F)((u + (((u >> 16) & 1u) + 0x7FFFu)) & 0xFFFF0000u);
    }
};

// rnd<T> lane by lane: the value rounded to T and widened back (finite lanes).
template <class L, src_dtype T>
typename L::F vrnd(typename L::F v) {
    if constexpr (T == src_dtype::f32) {
        return v;
    } else if constexpr (T == src_dtype::f16) {
        return L::round_f16(v);
    } else {
        return L::round_bf16(v);
    }
}

template <int W>
struct lanes;

#if defined(__AVX2__) && !defined(__AVX512F__)
template <>
struct lanes<8> : lane_ops<__m256> {
    using isa = x86::avx2;
    static F vmin(F a, F b) { return _mm256_min_ps(a, b); }
    static F vmax(F a, F b) { return _mm256_max_ps(a, b); }
    using I = __m256i;
    using nibbles = uint32_t;  // the fp4 codes of one vector


    static F round_f16(F v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); }
    static __m256 vabs(__m256 v) { return isa::abs(v); }
    static float hmax(__m256 v) { return isa::hmax(v); }
    static float hmin(__m256 v) { return isa::hmin(v); }

    // fp4_code<D> for 8 lanes with |a| < 8 (checked by the caller).
    template <src_dtype D>
    static __m256i vfp4_code(__m256 a) {
        const __m256 b = vabs(a);
        // k = how many of the magnitudes 0.5 .. 6 are <= b
        __m256i k = _mm256_setzero_si256();
        for (int i = 1; i < 8; ++i) {
            k = _mm256_sub_epi32(k, _mm256_castps_si256(_mm256_cmp_ps(b, _mm256_set1_ps(k_fp4_mags[i]), _CMP_GE_OQ)));
        }
        const __m256 mags = _mm256_loadu_ps(k_fp4_mags);
        const __m256i seven = _mm256_set1_epi32(7);
        const __m256i k1 = _mm256_min_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(1)), seven);
        const __m256 d_lo = vrnd<lanes<8>, D>(_mm256_sub_ps(b, _mm256_permutevar8x32_ps(mags, k)));
        const __m256 d_hi = vrnd<lanes<8>, D>(_mm256_sub_ps(_mm256_permutevar8x32_ps(mags, k1), b));
        const __m256i up = _mm256_andnot_si256(_mm256_cmpeq_epi32(k, seven),
                                               _mm256_castps_si256(_mm256_cmp_ps(d_hi, d_lo, _CMP_LT_OQ)));
        k = _mm256_sub_epi32(k, up);
        const __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_LT_OQ));
        const __m256i nz = _mm256_xor_si256(_mm256_cmpeq_epi32(k, _mm256_setzero_si256()), _mm256_set1_epi32(-1));
        return _mm256_or_si256(k, _mm256_and_si256(_mm256_and_si256(neg, nz), _mm256_set1_epi32(8)));
    }

    // mq_fp8_encode for 8 lanes (int32 lanes holding the byte).
    static __m256i vfp8_encode(__m256 a) {
        const __m256i u0 = _mm256_castps_si256(a);
        const __m256i sign = _mm256_and_si256(u0, _mm256_set1_epi32((int)0x80000000u));
        const __m256i u = _mm256_xor_si256(u0, sign);
        const __m256i magic = _mm256_set1_epi32(141 << 23);
        const __m256i low = _mm256_sub_epi32(
            _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(u), _mm256_set1_ps(16384.0f))), magic);
        const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 20), _mm256_set1_epi32(1));
        const __m256i high = _mm256_srli_epi32(
            _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32((int)(((uint32_t)(7 - 127) << 23) + 0x7FFFFu))), odd),
            20);
        const __m256i is_low = _mm256_cmpgt_epi32(_mm256_set1_epi32(121 << 23), u);
        const __m256i sat = _mm256_cmpgt_epi32(u, _mm256_set1_epi32(0x43E00000 - 1));
        __m256i r = _mm256_blendv_epi8(high, low, is_low);
        r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7E), sat);
        return _mm256_or_si256(_mm256_and_si256(r, _mm256_set1_epi32(0xFF)), _mm256_srli_epi32(sign, 24));
    }

    // 8 fp4 codes (int32 lanes, 0..15) -> one uint32, lane i at bits 4i.
    static uint32_t pack_nibbles(__m256i c) {
        const __m256i s = _mm256_sllv_epi32(c, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
        __m128i o = _mm_or_si128(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        o = _mm_or_si128(o, _mm_shuffle_epi32(o, 0x4E));
        o = _mm_or_si128(o, _mm_shuffle_epi32(o, 0xB1));
        return (uint32_t)_mm_cvtsi128_si32(o);
    }

    static __m256 vabsmax(const float * x, int gs) {
        __m256 m = vabs(_mm256_loadu_ps(x));
        for (int j = 8; j < gs; j += 8) m = _mm256_max_ps(vabs(_mm256_loadu_ps(x + j)), m);
        return m;
    }

    static bool all_finite_and_small(__m256 a, __m256 limit) {
        // lanes with |a| < limit (false for NaN)
        return _mm256_movemask_ps(_mm256_cmp_ps(vabs(a), limit, _CMP_LT_OQ)) == 0xFF;
    }

    // 32 / W vectors of int32 codes (each 0..255) -> 32 bytes
    static void store_bytes32(uint8_t * dst, const I * c) { _mm256_storeu_si256((__m256i *)dst, isa::pack_bytes(c[0], c[1], c[2], c[3])); }

    // lanes that are NaN or +-Inf
    static F nonfinite(F v) { return _mm256_cmp_ps(vabs(v), _mm256_set1_ps(std::numeric_limits<float>::infinity()), _CMP_NLT_UQ); }
    static F or_(F a, F b) { return _mm256_or_ps(a, b); }
    static bool any(F m) { return _mm256_movemask_ps(m) != 0; }

    // nearest-even rounding, then the truncating int32 conversion
    static F round_even(F v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static I to_int(F v) { return _mm256_cvttps_epi32(v); }

};
#endif

#if defined(__AVX512F__)
template <>
struct lanes<16> : lane_ops<__m512> {
    static F vmin(F a, F b) { return _mm512_min_ps(a, b); }
    static F vmax(F a, F b) { return _mm512_max_ps(a, b); }
    using I = __m512i;
    using nibbles = uint64_t;  // the fp4 codes of one vector


    static F round_f16(F v) { return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); }
    static F vabs(F v) { return _mm512_abs_ps(v); }
    static float hmax(F v) { return _mm512_reduce_max_ps(v); }
    static float hmin(F v) { return _mm512_reduce_min_ps(v); }

    template <src_dtype D>
    static I vfp4_code(F a) {  // as lanes<8>::vfp4_code, with masks for the compare results
        const F b = vabs(a);
        const I one = _mm512_set1_epi32(1), seven = _mm512_set1_epi32(7);
        I k = _mm512_setzero_si512();
        for (int i = 1; i < 8; ++i) {
            k = _mm512_mask_add_epi32(k, _mm512_cmp_ps_mask(b, _mm512_set1_ps(k_fp4_mags[i]), _CMP_GE_OQ), k, one);
        }
        const F mags = _mm512_broadcast_f32x8(_mm256_loadu_ps(k_fp4_mags));
        const I k1 = _mm512_min_epi32(_mm512_add_epi32(k, one), seven);
        const F d_lo = vrnd<lanes<16>, D>(_mm512_sub_ps(b, _mm512_permutexvar_ps(k, mags)));
        const F d_hi = vrnd<lanes<16>, D>(_mm512_sub_ps(_mm512_permutexvar_ps(k1, mags), b));
        const __mmask16 up = _mm512_cmp_ps_mask(d_hi, d_lo, _CMP_LT_OQ) & ~_mm512_cmpeq_epi32_mask(k, seven);
        k = _mm512_mask_add_epi32(k, up, k, one);
        const __mmask16 neg_nz = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_LT_OQ) & _mm512_test_epi32_mask(k, k);
        return _mm512_mask_or_epi32(k, neg_nz, k, _mm512_set1_epi32(8));
    }

    static I vfp8_encode(F a) {  // as lanes<8>::vfp8_encode, with masks for the blends
        const I u0 = _mm512_castps_si512(a);
        const I sign = _mm512_and_si512(u0, _mm512_set1_epi32((int)0x80000000u));
        const I u = _mm512_xor_si512(u0, sign);
        const I magic = _mm512_set1_epi32(141 << 23);
        const I low = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(u), _mm512_set1_ps(16384.0f))), magic);
        const I odd = _mm512_and_si512(_mm512_srli_epi32(u, 20), _mm512_set1_epi32(1));
        const I high = _mm512_srli_epi32(
            _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32((int)(((uint32_t)(7 - 127) << 23) + 0x7FFFFu))), odd), 20);
        const __mmask16 is_low = _mm512_cmpgt_epi32_mask(_mm512_set1_epi32(121 << 23), u);
        const __mmask16 sat = _mm512_cmpgt_epi32_mask(u, _mm512_set1_epi32(0x43E00000 - 1));
        I r = _mm512_mask_blend_epi32(is_low, high, low);
        r = _mm512_mask_blend_epi32(sat, r, _mm512_set1_epi32(0x7E));
        return _mm512_or_si512(_mm512_and_si512(r, _mm512_set1_epi32(0xFF)), _mm512_srli_epi32(sign, 24));
    }

    // 16 fp4 codes (int32 lanes, 0..15) -> one uint64, lane i at bits 4i.
    static nibbles pack_nibbles(I c) {
        const I s = _mm512_sllv_epi32(c, _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28));
        const uint32_t lo = (uint32_t)_mm512_mask_reduce_or_epi32(0x00FF, s);
        const uint32_t hi = (uint32_t)_mm512_mask_reduce_or_epi32(0xFF00, s);
        return (nibbles)lo | (nibbles)hi << 32;
    }

    static F vabsmax(const float * x, int gs) {  // the operand order of lanes<8>::vabsmax
        F m = vabs(_mm512_loadu_ps(x));
        for (int j = 16; j < gs; j += 16) m = _mm512_max_ps(vabs(_mm512_loadu_ps(x + j)), m);
        return m;
    }

    static bool all_finite_and_small(F a, F limit) { return _mm512_cmp_ps_mask(vabs(a), limit, _CMP_LT_OQ) == 0xFFFF; }

    // 2 vectors of int32 codes (each 0..255) -> 32 bytes
    static void store_bytes32(uint8_t * dst, const I * c) {
        _mm_storeu_si128((__m128i *)dst, _mm512_cvtepi32_epi8(c[0]));
        _mm_storeu_si128((__m128i *)(dst + 16), _mm512_cvtepi32_epi8(c[1]));
    }

    static __mmask16 nonfinite(F v) { return _mm512_cmp_ps_mask(vabs(v), _mm512_set1_ps(std::numeric_limits<float>::infinity()), _CMP_NLT_UQ); }
    static __mmask16 or_(__mmask16 a, __mmask16 b) { return a | b; }
    static bool any(__mmask16 m) { return m != 0; }

    static F round_even(F v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static I to_int(F v) { return _mm512_cvttps_epi32(v); }

};
#endif

template <int W, src_dtype T, bool FP8>
void mx_row(const float * x, int64_t n, uint8_t * wrow, uint8_t * srow) {
    using L = lanes<W>;
    using F = typename L::F;
    constexpr int NV = 32 / W;  // vectors per group of 32
    const float maxval = FP8 ? 448.0f : 6.0f;
    const F inf = L::set1(std::numeric_limits<float>::infinity());
    for (int64_t g = 0; g < n / 32; ++g) {
        const float * xg = x + g * 32;
        const F m = L::vabsmax(xg, 32);
        // non-finite values (only with allow_nonfinite): the scalar path
        if (!L::all_finite_and_small(m, inf)) {
            float p;
            srow[g] = mx_group_scale<T>(group_absmax(xg, 32), maxval, p);
            uint8_t q[32];
            mx_group_codes<T, FP8>(xg, 32, p, q);
            mlx_pack_codes(q, 32, FP8 ? 8 : 4, wrow + g * (FP8 ? 32 : 16));
            continue;
        }
        float p;
        srow[g] = mx_group_scale<T>(L::hmax(m), maxval, p);
        const F vp = L::set1(p);
        F a[NV];
        for (int k = 0; k < NV; ++k) a[k] = vrnd<L, T>(L::div(L::load(xg + W * k), vp));
        if constexpr (FP8) {
            typename L::I c[NV];
            for (int k = 0; k < NV; ++k) c[k] = L::vfp8_encode(a[k]);
            L::store_bytes32(wrow + g * 32, c);
        } else {
            const F eight = L::set1(8.0f);
            typename L::nibbles words[NV];
            for (int k = 0; k < NV; ++k) {
                if (L::all_finite_and_small(a[k], eight)) {
                    words[k] = L::pack_nibbles(L::template vfp4_code<T>(a[k]));
                } else {
                    alignas(64) float t[W];
                    L::store(t, a[k]);
                    typename L::nibbles w = 0;
                    for (int i = 0; i < W; ++i) w |= (typename L::nibbles)fp4_code<T>(t[i]) << (4 * i);
                    words[k] = w;
                }
            }
            std::memcpy(wrow + g * 16, words, sizeof words);
        }
    }
}

template <int W, src_dtype T>
void nv_row(const float * x, int64_t n, bool has_gs, float enc, uint8_t * wrow, uint8_t * srow) {
    using L = lanes<W>;
    using F = typename L::F;
    constexpr int NV = 16 / W;  // vectors per group of 16
    const F venc = L::set1(enc), eight = L::set1(8.0f);
    const F inf = L::set1(std::numeric_limits<float>::infinity());
    for (int64_t g = 0; g < n / 16; ++g) {
        const float * xg = x + g * 16;
        const F m = L::vabsmax(xg, 16);
        float sd;
        const bool finite = L::all_finite_and_small(m, inf);
        srow[g] = nv_group_scale<T>(finite ? L::hmax(m) : group_absmax(xg, 16), has_gs, enc, sd);
        typename L::nibbles words[NV];
        bool done = finite && sd != 0.0f;
        if (done) {
            const F vsd = L::set1(sd);
            for (int k = 0; k < NV && done; ++k) {
                F a = vrnd<L, T>(L::div(L::load(xg + W * k), vsd));
                if (has_gs) a = L::mul(a, venc);
                if (!L::all_finite_and_small(a, eight)) {
                    done = false;
                    break;
                }
                words[k] = L::pack_nibbles(L::template vfp4_code<src_dtype::f32>(a));
            }
        }
        if (done) {
            std::memcpy(wrow + g * 8, words, sizeof words);
        } else {  // zero scale (0/0), non-finite or out-of-table values: the scalar path
            uint8_t q[16];
            nv_group_codes<T>(xg, 16, sd, has_gs, enc, q);
            mlx_pack_codes(q, 16, 4, wrow + g * 8);
        }
    }
}

template <int W>
void affine_row(const float * x, int64_t n, int bits, int gs, uint8_t * wrow, float * scales, float * biases) {
    using L = lanes<W>;
    using F = typename L::F;
    constexpr int NV = 32 / W;  // vectors per 32 values
    if (bits == 1) {  // rare; the scalar kernel
        mlx_affine_row_generic(x, n, bits, gs, wrow, scales, biases);
        return;
    }
    const float n_bins = (float)((1 << bits) - 1);
    const F lo = L::set1(-1.0f), hi = L::set1(n_bins + 1.0f);
    const F zero = L::set1(0.0f), top = L::set1(n_bins);
    const int64_t gbytes = (int64_t)gs * bits / 8;
    alignas(64) uint8_t q[128];
    for (int64_t g = 0; g < n / gs; ++g) {
        const float * xg = x + g * gs;
        F vmax = L::load(xg), vmin = vmax;
        auto bad = L::nonfinite(vmax);
        for (int j = W; j < gs; j += W) {
            const F v = L::load(xg + j);
            vmax = L::vmax(v, vmax);
            vmin = L::vmin(v, vmin);
            bad = L::or_(bad, L::nonfinite(v));
        }
        if (L::any(bad)) {  // non-finite values (allow_nonfinite): the scalar path
            affine_group_codes(xg, gs, bits, q, scales[g], biases[g]);
            mlx_pack_codes(q, gs, bits, wrow + g * gbytes);
            continue;
        }
        float scale, bias;
        mlx_affine_params(L::hmin(vmin), L::hmax(vmax), bits, scale, bias);
        const F vs = L::set1(scale), vb = L::set1(bias);
        for (int j = 0; j < gs; j += 32) {
            typename L::I c[NV];
            for (int k = 0; k < NV; ++k) {
                F v = L::div(L::sub(L::load(xg + j + W * k), vb), vs);
                v = L::vmin(L::vmax(v, lo), hi);
                v = L::round_even(v);
                v = L::vmin(L::vmax(v, zero), top);
                c[k] = L::to_int(v);
            }
            L::store_bytes32(q + j, c);
        }
        uint8_t * dst = wrow + g * gbytes;
        if (bits == 8) {
            std::memcpy(dst, q, (size_t)gs);
        } else if (bits == 4) {
            for (int j = 0; j < gs; j += 32) x86::pack_nibble_pairs32(q + j, dst + j / 2);
        } else {
            mlx_pack_codes(q, gs, bits, dst);
        }
        scales[g] = scale;
        biases[g] = bias;
    }
}

}  // namespace
}  // namespace ggq::mq

namespace ggq {

template <int W>
void mlx_simd<W>::fp_row(mlx_mode mode, src_dtype dtype, const float * x, int64_t n, bool has_gs, float enc, uint8_t * wrow,
                         uint8_t * srow) {
    auto run = [&]<src_dtype T>() {
        switch (mode) {
            case mlx_mode::mxfp4: mq::mx_row<W, T, false>(x, n, wrow, srow); break;
            case mlx_mode::mxfp8: mq::mx_row<W, T, true>(x, n, wrow, srow); break;
            case mlx_mode::nvfp4: mq::nv_row<W, T>(x, n, has_gs, enc, wrow, srow); break;
            default: break;
        }
    };
    switch (dtype) {
        case src_dtype::f32: run.template operator()<src_dtype::f32>(); break;
        case src_dtype::f16: run.template operator()<src_dtype::f16>(); break;
        case src_dtype::bf16: run.template operator()<src_dtype::bf16>(); break;
    }
}

template <int W>
void mlx_simd<W>::affine_row(const float * x, int64_t n, int bits, int gs, uint8_t * wrow, float * scales, float * biases) {
    mq::affine_row<W>(x, n, bits, gs, wrow, scales, biases);
}

}  // namespace ggq
