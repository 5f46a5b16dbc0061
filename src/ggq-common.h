// Block layouts of the ggml quantization formats. The structs are the spec: their sizes are
// checked against ggml's on-disk layout, so a change here that breaks compatibility fails to build.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ggq {

using ggml_half = uint16_t;  // IEEE 754 binary16 bits
using ggml_bf16 = uint16_t;  // bfloat16 bits

constexpr int QK4_0 = 32;
constexpr int QK4_1 = 32;
constexpr int QK5_0 = 32;
constexpr int QK5_1 = 32;
constexpr int QK8_0 = 32;
constexpr int QK8_1 = 32;
constexpr int QK_K = 256;       // super-block size of the K-quants and most IQ types
constexpr int K_SCALE_SIZE = 12;
constexpr int QK4_NL = 32;
constexpr int QK_MXFP4 = 32;

// ===== legacy quants (block of 32)

struct block_q4_0 {
    ggml_half d;
    uint8_t qs[QK4_0 / 2];  // low nibble: x[j], high nibble: x[j + 16]
};
static_assert(sizeof(block_q4_0) == sizeof(ggml_half) + QK4_0 / 2, "wrong q4_0 block size/padding");

struct block_q4_1 {
    ggml_half d;
    ggml_half m;
    uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(block_q4_1) == 2 * sizeof(ggml_half) + QK4_1 / 2, "wrong q4_1 block size/padding");

struct block_q5_0 {
    ggml_half d;
    uint8_t qh[4];  // fifth bit of each value, bit j of the little-endian u32
    uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(block_q5_0) == sizeof(ggml_half) + 4 + QK5_0 / 2, "wrong q5_0 block size/padding");

struct block_q5_1 {
    ggml_half d;
    ggml_half m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(block_q5_1) == 2 * sizeof(ggml_half) + 4 + QK5_1 / 2, "wrong q5_1 block size/padding");

struct block_q8_0 {
    ggml_half d;
    int8_t qs[QK8_0];
};
static_assert(sizeof(block_q8_0) == sizeof(ggml_half) + QK8_0, "wrong q8_0 block size/padding");

struct block_q8_1 {
    ggml_half d;
    ggml_half s;  // d * sum(qs)
    int8_t qs[QK8_1];
};
static_assert(sizeof(block_q8_1) == 2 * sizeof(ggml_half) + QK8_1, "wrong q8_1 block size/padding");

// ===== K-quants (super-block of 256)

struct block_q2_K {
    uint8_t scales[QK_K / 16];  // low nibble scale, high nibble min, per 16 values
    uint8_t qs[QK_K / 4];
    ggml_half d;
    ggml_half dmin;
};
static_assert(sizeof(block_q2_K) == 2 * sizeof(ggml_half) + QK_K / 16 + QK_K / 4, "wrong q2_K block size/padding");

struct block_q3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];  // 16 six-bit scales
    ggml_half d;
};
static_assert(sizeof(block_q3_K) == sizeof(ggml_half) + QK_K / 4 + QK_K / 8 + 12, "wrong q3_K block size/padding");

struct block_q4_K {
    ggml_half d;
    ggml_half dmin;
    uint8_t scales[K_SCALE_SIZE];  // 8 six-bit scales and mins
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q4_K) == 2 * sizeof(ggml_half) + K_SCALE_SIZE + QK_K / 2, "wrong q4_K block size/padding");

struct block_q5_K {
    ggml_half d;
    ggml_half dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q5_K) == 2 * sizeof(ggml_half) + K_SCALE_SIZE + QK_K / 2 + QK_K / 8, "wrong q5_K block size/padding");

struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    ggml_half d;
};
static_assert(sizeof(block_q6_K) == sizeof(ggml_half) + QK_K / 16 + 3 * QK_K / 4, "wrong q6_K block size/padding");

struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
static_assert(sizeof(block_q8_K) == sizeof(float) + QK_K + QK_K / 16 * sizeof(int16_t), "wrong q8_K block size/padding");

// ===== IQ2 / IQ3 / IQ1 (lattice grids; sizes per super-block of 256)

struct block_iq2_xxs {
    ggml_half d;
    uint16_t qs[QK_K / 8];  // per 32 values: 4 grid bytes, then 4 x 7 sign bits and a 4-bit scale
};
static_assert(sizeof(block_iq2_xxs) == sizeof(ggml_half) + QK_K / 8 * sizeof(uint16_t), "wrong iq2_xxs block size/padding");

struct block_iq2_xs {
    ggml_half d;
    uint16_t qs[QK_K / 8];  // 9-bit grid index | 7-bit sign index << 9
    uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq2_xs) == sizeof(ggml_half) + QK_K / 8 * sizeof(uint16_t) + QK_K / 32, "wrong iq2_xs block size/padding");

struct block_iq2_s {
    ggml_half d;
    uint8_t qs[QK_K / 4];  // low 8 bits of the grid indices, then the sign bytes
    uint8_t qh[QK_K / 32];
    uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq2_s) == sizeof(ggml_half) + QK_K / 4 + QK_K / 16, "wrong iq2_s block size/padding");

struct block_iq3_xxs {
    ggml_half d;
    uint8_t qs[3 * QK_K / 8];  // grid indices, then per 32 values 4 x 7 sign bits and a 4-bit scale
};
static_assert(sizeof(block_iq3_xxs) == sizeof(ggml_half) + 3 * (QK_K / 8), "wrong iq3_xxs block size/padding");

constexpr int IQ3S_N_SCALE = QK_K / 64;

struct block_iq3_s {
    ggml_half d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[IQ3S_N_SCALE];
};
static_assert(sizeof(block_iq3_s) == sizeof(ggml_half) + 13 * (QK_K / 32) + IQ3S_N_SCALE, "wrong iq3_s block size/padding");

struct block_iq1_s {
    ggml_half d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32];  // 3 high index bits x 4, 3-bit scale, delta sign
};
static_assert(sizeof(block_iq1_s) == sizeof(ggml_half) + QK_K / 8 + QK_K / 16, "wrong iq1_s block size/padding");

struct block_iq1_m {
    uint8_t qs[QK_K / 8];      // grid index, low 8 bits
    uint8_t qh[QK_K / 16];     // grid index high 3 bits and delta sign, per 8 values
    uint8_t scales[QK_K / 32]; // 3-bit scales; the fp16 super-scale is spread over the top nibbles
};
static_assert(sizeof(block_iq1_m) == QK_K / 8 + QK_K / 16 + QK_K / 32, "wrong iq1_m block size/padding");

// ===== ternary (TQ), 1- and 2-bit (Q1_0, Q2_0) and FP4 (MXFP4, NVFP4)

struct block_tq1_0 {
    uint8_t qs[(QK_K - 4 * QK_K / 64) / 5];  // 5 trits per byte
    uint8_t qh[QK_K / 64];                   // 4 trits per byte
    ggml_half d;
};
static_assert(sizeof(block_tq1_0) == sizeof(ggml_half) + QK_K / 64 + (QK_K - 4 * QK_K / 64) / 5, "wrong tq1_0 block size/padding");

struct block_tq2_0 {
    uint8_t qs[QK_K / 4];  // 2 bits per value
    ggml_half d;
};
static_assert(sizeof(block_tq2_0) == sizeof(ggml_half) + QK_K / 4, "wrong tq2_0 block size/padding");

constexpr int QK1_0 = 128;
constexpr int QK2_0 = 64;
constexpr int QK_NVFP4 = 64;
constexpr int QK_NVFP4_SUB = 16;  // values per UE4M3 scale

struct block_q1_0 {
    ggml_half d;
    uint8_t qs[QK1_0 / 8];  // one sign bit per value
};
static_assert(sizeof(block_q1_0) == sizeof(ggml_half) + QK1_0 / 8, "wrong q1_0 block size/padding");

struct block_q2_0 {
    ggml_half d;
    uint8_t qs[QK2_0 / 4];  // 2 bits per value: -1, 0, 1, 2 times d
};
static_assert(sizeof(block_q2_0) == sizeof(ggml_half) + QK2_0 / 4, "wrong q2_0 block size/padding");

struct block_mxfp4 {
    uint8_t e;  // E8M0 shared exponent
    uint8_t qs[QK_MXFP4 / 2];
};
static_assert(sizeof(block_mxfp4) == sizeof(uint8_t) + QK_MXFP4 / 2, "wrong mxfp4 block size/padding");

struct block_nvfp4 {
    uint8_t d[QK_NVFP4 / QK_NVFP4_SUB];  // UE4M3 scale per 16 values
    uint8_t qs[QK_NVFP4 / 2];
};
static_assert(sizeof(block_nvfp4) == QK_NVFP4 / QK_NVFP4_SUB + QK_NVFP4 / 2, "wrong nvfp4 block size/padding");

// ===== IQ4 (non-linear 4-bit)

struct block_iq4_nl {
    ggml_half d;
    uint8_t qs[QK4_NL / 2];
};
static_assert(sizeof(block_iq4_nl) == sizeof(ggml_half) + QK4_NL / 2, "wrong iq4_nl block size/padding");

struct block_iq4_xs {
    ggml_half d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_iq4_xs) == sizeof(ggml_half) + sizeof(uint16_t) + QK_K / 64 + QK_K / 2, "wrong iq4_xs block size/padding");

}  // namespace ggq
