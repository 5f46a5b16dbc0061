// Internal to the K-quant kernels: the per-super-block steps that follow the per-group scale
// searches. The scalar reference (quants-k.cpp) and the vector paths (quants-k-lanes.h) run the
// searches differently but finish every super-block through these
// same functions, compiled once in the generic translation unit.
#pragma once

#include "ggq-common.h"

#include <cstdint>

namespace ggq {
namespace kq {

// Sum of x[j]^2 over one super-block, in ggml's order.
float superblock_sumsq(const float * x);

// Inputs: the super-block's values x, the levels L from the per-group searches (overwritten),
// the per-group scales and mins (mins as returned by the searches: the negated offset), and for
// the weighted variants the per-group sums of weights sw.
void finish_q2_K_ref(const float * x, uint8_t * L, const float * scales, const float * mins, block_q2_K & b);
void finish_q2_K_impl(const float * x, uint8_t * L, const float * scales, const float * mins, const float * sw, block_q2_K & b);
void finish_q3_K_ref(const float * x, int8_t * L, const float * scales, block_q3_K & b);
void finish_q3_K_impl(const float * x, int8_t * L, const float * scales, const float * sw, block_q3_K & b);
void finish_q4_K_ref(const float * x, uint8_t * L, const float * scales, const float * mins, block_q4_K & b);
void finish_q4_K_impl(const float * x, uint8_t * L, const float * scales, const float * mins, const float * sw, block_q4_K & b);
void finish_q5_K_ref(const float * x, uint8_t * L, const float * scales, const float * mins, block_q5_K & b);
void finish_q5_K_impl(const float * x, uint8_t * L, const float * scales, const float * mins, const float * sw, block_q5_K & b);
void finish_q6_K(const float * x, int8_t * L, const float * scales, block_q6_K & b);

}  // namespace kq
}  // namespace ggq
