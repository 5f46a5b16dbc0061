// What every kernel family shares: the kernel function types, bit casts, ggml's nearest_int, and
// the byte count of whole rows. Helpers have internal linkage (anonymous namespace): each
// translation unit keeps its own copy, compiled with its own instruction-set flags, so the linker
// can never hand an AVX-512 copy of a helper to the portable code.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace ggq {

// The three kernel shapes of the type table; family headers declare their kernels with these.
using row_quantize_t = void(const float * x, void * y, int64_t k);    // quantize_row_<t>_ref
using row_dequantize_t = void(const void * x, float * y, int64_t k);  // dequantize_row_<t>
// quantize_<t>: nrows rows of n_per_row values, imatrix (n_per_row weights or null) as in
// ggml_quantize_chunk; returns the bytes written.
using chunk_quantize_t = size_t(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

namespace {

inline uint32_t f32_bits(float f) { return std::bit_cast<uint32_t>(f); }
inline float f32_from_bits(uint32_t u) { return std::bit_cast<float>(u); }

// ggml's nearest_int: round to nearest (ties to even) with the 1.5 * 2^23 trick, exact for
// |x| <= 2^22 - 1. Larger inputs give the same (meaningless) bits as ggml's, which matters only
// for bit-equality.
inline int nearest_int(float fval) { return (int)(f32_bits(fval + 12582912.f) & 0x007fffff) - 0x00400000; }

// ggml's scan for the signed value of largest magnitude: the first x[i] with the largest |x[i]| (0 when
// all are zero; NaNs never win), that magnitude in amax.
inline float max_by_magnitude(const float * x, int n, float & amax) {
    float max = 0;
    amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    return max;
}

// max |x[i]| as ggml's `if (amax < fabsf(x[i])) amax = fabsf(x[i])` scans find it (NaNs never win).
inline float abs_max(const float * x, int n) {
    float amax;
    max_by_magnitude(x, n, amax);
    return amax;
}

// Bytes of nrows rows of n_per_row values in blocks of QK values.
template <typename Block, int QK>
size_t rows_bytes(int64_t nrows, int64_t n_per_row) {
    return (size_t)nrows * (size_t)(n_per_row / QK) * sizeof(Block);
}

// The chunk quantizer of a type without a weighted variant: its row reference over all rows
// (importance weights are accepted and ignored, as in ggml).
template <typename Block, int QK, row_quantize_t * Ref>
size_t quantize_rows_ref(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float *) {
    Ref(src, dst, nrows * n_per_row);
    return rows_bytes<Block, QK>(nrows, n_per_row);
}

// The chunk quantizer of a type with a weighted variant: the row reference over all rows without
// importance weights, the chunk quantizer Weighted with them.
template <typename Block, int QK, row_quantize_t * Ref, chunk_quantize_t * Weighted>
size_t quantize_rows_ref_or_weighted(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    if (imatrix) return Weighted(src, dst, nrows, n_per_row, imatrix);
    return quantize_rows_ref<Block, QK, Ref>(src, dst, nrows, n_per_row, imatrix);
}

}  // namespace
}  // namespace ggq
