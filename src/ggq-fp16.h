// Scalar float conversions, bit-exact with ggml's (round to nearest even; NaN kept quiet).
#pragma once

#include "ggq-kernel.h"

#include <cstdint>

namespace ggq {

// Internal linkage, as the helpers of ggq-kernel.h: the SIMD translation units include this too.
namespace {

inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) {  // Inf or NaN: keep the payload
        return f32_from_bits(sign | 0x7f800000u | (man << 13));
    }
    if (exp != 0) {
        return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
    }
    // zero or subnormal: value = man * 2^-24, exact in float
    const float mag = (float)man * 5.9604644775390625e-8f;
    return sign ? -mag : mag;
}

inline uint16_t fp32_to_fp16(float f) {
    const uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) {  // NaN: one canonical quiet NaN, as ggml's scalar path writes
        return (uint16_t)(sign | 0x7e00u);
    }
    if (ax >= 0x477ff000u) {  // Inf, or rounds to >= 65520: overflow to Inf
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax < 0x38800000u) {  // below 2^-14: result is subnormal or zero
        if (ax < 0x33000000u) {  // below 2^-25: rounds to zero
            return sign;
        }
        // shift the full significand so that one unit is 2^-24, rounding to nearest even
        const uint32_t e = ax >> 23;
        const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e;  // 14..24
        const uint32_t half = 1u << (shift - 1);
        const uint32_t rest = m & ((1u << shift) - 1);
        uint32_t q = m >> shift;
        if (rest > half || (rest == half && (q & 1u))) {
            ++q;
        }
        return (uint16_t)(sign | q);
    }
    // normal: rebias and round the 13 dropped bits to nearest even
    uint32_t v = ax - 0x38000000u;  // exponent bias 127 -> 15
    v += 0xfffu + ((v >> 13) & 1u);
    return (uint16_t)(sign | (v >> 13));
}

inline float bf16_to_fp32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

inline uint16_t fp32_to_bf16(float f) {
    const uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: truncate and force quiet
        return (uint16_t)((u >> 16) | 64u);
    }
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

}  // namespace
}  // namespace ggq
