// Internal to the MLX kernels (mlx-quant.cpp and its SIMD variants): the scalar steps that every
// variant must share bit for bit. Everything here has internal linkage, so that a copy compiled
// with AVX2 flags can never be picked by the linker for the portable translation unit.
#pragma once

#include "ggq-kernel.h"
#include "mlx-quant.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace ggq {

namespace {

// The E2M1 values in code order (code = sign << 3 | magnitude index).
constexpr float k_fp4_values[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
constexpr float k_fp4_mags[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

// ---- storing a float32 in a narrower dtype and reading it back, as MLX's half types do

// bfloat16 bits: nearest even; NaN becomes MLX's single positive quiet NaN.
inline uint16_t mq_bf16_bits(float x) {
    if (std::isnan(x)) return 0x7FC0;
    const uint32_t u = f32_bits(x);
    return (uint16_t)((u + ((u >> 16) & 1u) + 0x7FFFu) >> 16);
}

// x rounded to the nearest binary16 value (ties to even; overflow to Inf; NaN kept).
inline float mq_round_f16(float x) {
    uint32_t u = f32_bits(x);
    const uint32_t ax = u & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) return x;
    if (ax >= 0x477FF000u) return std::copysign(std::numeric_limits<float>::infinity(), x);  // >= 65520
    if (ax < 0x38800000u) {  // below 2^-14: multiples of 2^-24 (both scalings are exact)
        return std::nearbyint(x * 16777216.0f) * 5.9604644775390625e-8f;
    }
    u += 0xFFFu + ((u >> 13) & 1u);
    return f32_from_bits(u & ~0x1FFFu);
}

template <src_dtype T>
inline float rnd(float x) {
    if constexpr (T == src_dtype::f32) {
        return x;
    } else if constexpr (T == src_dtype::f16) {
        return mq_round_f16(x);
    } else {
        return f32_from_bits((uint32_t)mq_bf16_bits(x) << 16);
    }
}

// ---- E4M3 (MLX's to_fp8 / from_fp8)

inline uint8_t mq_fp8_encode(float x) {
    uint32_t u = f32_bits(x);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint8_t r;
    if (u >= 0x43E00000u) {  // >= 448 (also Inf, NaN): saturate to 448
        r = 0x7E;
    } else if (u < (121u << 23)) {  // below 2^-6: subnormal; adding 2^14 rounds to a multiple of 2^-9
        r = (uint8_t)(f32_bits(f32_from_bits(u) + 16384.0f) - (141u << 23));
    } else {  // normal: rebias the exponent and round the 20 dropped mantissa bits to nearest even
        u += ((uint32_t)(7 - 127) << 23) + 0x7FFFFu + ((u >> 20) & 1u);
        r = (uint8_t)(u >> 20);
    }
    return (uint8_t)(r | (sign >> 24));
}

inline float mq_fp8_decode(uint8_t b) {
    if ((b & 0x7F) == 0x7F) {  // E4M3FN's only NaN (MLX >= 0.32.4 decodes it so)
        return (b & 0x80) ? -std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::quiet_NaN();
    }
    const int e = (b >> 3) & 15;
    const int m = b & 7;
    const float v = e == 0 ? (float)m * 0.001953125f : std::ldexp(1.0f + (float)m * 0.125f, e - 7);
    return (b & 0x80) ? -v : v;
}

// ---- E2M1 code choice: MLX's argmin over its 16-entry table of |D(a - v)|, D the dtype the
// distances are computed in (the first entry wins ties)

template <src_dtype D>
uint8_t fp4_code_scan(float a) {
    float best = std::fabs(rnd<D>(a - k_fp4_values[0]));
    uint8_t idx = 0;
    for (int i = 1; i < 16; ++i) {
        const float d = std::fabs(rnd<D>(a - k_fp4_values[i]));
        if (d < best) {
            best = d;
            idx = (uint8_t)i;
        }
    }
    return idx;
}

// Same result without the scan for |a| < 8: rounding is monotonic, so only the two table values
// around |a| can be nearest, and farther ones stay >= 0.5 away, more than any rounding moves them.
// A tie goes to the smaller magnitude (the earlier entry); +0 (entry 0) beats -0 (entry 8).
template <src_dtype D>
inline uint8_t fp4_code(float a) {
    const float b = std::fabs(a);
    if (!(b < 8.0f)) return fp4_code_scan<D>(a);
    int k = b < 2.0f ? (int)(b * 2.0f) : (b < 3.0f ? 4 : (b < 4.0f ? 5 : (b < 6.0f ? 6 : 7)));
    if (k < 7) {
        const float d_lo = rnd<D>(b - k_fp4_mags[k]);
        const float d_hi = rnd<D>(k_fp4_mags[k + 1] - b);
        k += d_hi < d_lo ? 1 : 0;
    }
    return (uint8_t)((a < 0.0f && k != 0) ? (k | 8) : k);
}

// ---- per-group scales

// MLX's affine scale and bias from a group's min and max (float32 arithmetic, as its CPU kernel).
// For bits > 1 the edge of larger magnitude is snapped to an exact code so that it dequantizes
// exactly; 1 bit keeps bias = min, scale = max - min.
inline void mlx_affine_params(float w_min, float w_max, int bits, float & scale_out, float & bias_out) {
    const float eps = 1e-7f;
    if (bits == 1) {
        const float scale = w_max - w_min;
        scale_out = scale < eps ? eps : scale;
        bias_out = w_min;
        return;
    }
    const float n_bins = (float)((1 << bits) - 1);
    const bool mask = std::fabs(w_min) > std::fabs(w_max);
    float scale = (w_max - w_min) / n_bins;
    scale = scale < eps ? eps : scale;
    scale = mask ? scale : -scale;
    const float edge = mask ? w_min : w_max;
    const float q0 = std::nearbyint(edge / scale);
    float bias = 0.0f;
    if (q0 != 0.0f) {
        scale = edge / q0;
        bias = edge;
    }
    scale_out = scale;
    bias_out = bias;
}

// One affine group (scalar): codes one per byte (packed by the caller), scale and bias.
inline void affine_group_codes(const float * xg, int gs, int bits, uint8_t * q, float & scale, float & bias) {
    float w_max = xg[0], w_min = xg[0];
    for (int j = 1; j < gs; ++j) {
        w_max = xg[j] > w_max ? xg[j] : w_max;
        w_min = xg[j] < w_min ? xg[j] : w_min;
    }
    mlx_affine_params(w_min, w_max, bits, scale, bias);
    // MLX: rint((x - bias) / scale) clamped to [0, n_bins]. Clamping to [-1, n_bins + 1] first
    // keeps the rounding trick (1.5 * 2^23 added and subtracted) exact without changing the result.
    const float n_bins = (float)((1 << bits) - 1);
    const float hi = n_bins + 1.0f;
    const float magic = 12582912.0f;
    for (int j = 0; j < gs; ++j) {
        float v = (xg[j] - bias) / scale;
        v = v > -1.0f ? v : -1.0f;
        v = v < hi ? v : hi;
        float r = (v + magic) - magic;
        r = r > 0.0f ? r : 0.0f;
        r = r < n_bins ? r : n_bins;
        q[j] = (uint8_t)(int32_t)r;
    }
}

// mxfp4 / mxfp8: the E8M0 exponent e = ceil(log2(T(max|w| / maxval))) (0 for a zero group), the
// divisor p = T(2^e) and the stored byte e + 127 (MLX converts through a 32-bit int, so
// out-of-range exponents wrap).
template <src_dtype T>
inline uint8_t mx_group_scale(float amax, float maxval, float & p) {
    const float s = rnd<T>(amax / maxval);
    const float e = s != 0.0f ? std::ceil(std::log2(s)) : 0.0f;
    p = rnd<T>(std::ldexp(1.0f, (int)e));
    return (uint8_t)(int32_t)rnd<T>(e + 127.0f);
}

// nvfp4: the E4M3 scale byte of T(max|w| / 6) (times the float32 encode factor 448*6/global_scale
// when there is one) and the divisor T(decode(byte)).
template <src_dtype T>
inline uint8_t nv_group_scale(float amax, bool has_gs, float enc, float & sd) {
    float s = rnd<T>(amax / 6.0f);
    if (has_gs) s = s * enc;
    const uint8_t sb = mq_fp8_encode(s);
    sd = rnd<T>(mq_fp8_decode(sb));
    return sb;
}

// The codes of one group (scalar); fp4 codes one per byte (packed by the caller).
template <src_dtype T, bool FP8>
inline void mx_group_codes(const float * x, int gs, float p, uint8_t * q) {
    for (int j = 0; j < gs; ++j) {
        const float a = rnd<T>(x[j] / p);
        q[j] = FP8 ? mq_fp8_encode(a) : fp4_code<T>(a);
    }
}

template <src_dtype T>
inline void nv_group_codes(const float * x, int gs, float sd, bool has_gs, float enc, uint8_t * q) {
    for (int j = 0; j < gs; ++j) {
        float a = rnd<T>(x[j] / sd);
        if (has_gs) a = a * enc;
        q[j] = fp4_code<src_dtype::f32>(a);  // float32 distances: MLX multiplied by a float32 factor
    }
}

inline float group_absmax(const float * x, int gs) {
    float amax = 0.0f;
    for (int j = 0; j < gs; ++j) {
        const float a = std::fabs(x[j]);
        amax = a > amax ? a : amax;
    }
    return amax;
}

}  // namespace

// One row of n float32 values -> packed codes (n * bits / 8 bytes) and per-group scales/biases.
using mlx_affine_row_fn = void (*)(const float * x, int64_t n, int bits, int gs, uint8_t * wrow, float * scales,
                                   float * biases);
// One row of the fp modes: packed codes and scale bytes. `dtype` is the input dtype the values
// (widened to float32 in x) came from; MLX computes in it.
using mlx_fp_row_fn = void (*)(mlx_mode mode, src_dtype dtype, const float * x, int64_t n, bool has_gs, float enc,
                               uint8_t * wrow, uint8_t * srow);

void mlx_affine_row_generic(const float * x, int64_t n, int bits, int gs, uint8_t * wrow, float * scales,
                            float * biases);
void mlx_fp_row_generic(mlx_mode mode, src_dtype dtype, const float * x, int64_t n, bool has_gs, float enc,
                        uint8_t * wrow, uint8_t * srow);
#if defined(GGQUANT_X86_SIMD)
// Vector versions of the two row kernels: one body over W float lanes (mlx-quant-lanes.h),
// compiled in mlx-quant-avx2.cpp (W = 8) and mlx-quant-avx512.cpp (W = 16). Same bytes as the
// _generic kernels.
template <int W>
struct mlx_simd {
    static void affine_row(const float * x, int64_t n, int bits, int gs, uint8_t * wrow, float * scales, float * biases);
    static void fp_row(mlx_mode mode, src_dtype dtype, const float * x, int64_t n, bool has_gs, float enc, uint8_t * wrow,
                       uint8_t * srow);
};
extern template struct mlx_simd<8>;
extern template struct mlx_simd<16>;
#endif

// LSB-first bit-stream packing of `count` codes (a multiple of the pack size) as MLX writes it.
void mlx_pack_codes(const uint8_t * q, int count, int bits, uint8_t * dst);

}  // namespace ggq
