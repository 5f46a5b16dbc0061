// MLX quantization modes (mlx.core.quantize / dequantize), bit-identical to MLX's CPU results.
//
// Formats (one row = the last axis; every group_size consecutive values share a scale):
//   affine  bits 1..6, 8; group 32/64/128. Per group a scale and a bias in the input dtype;
//           codes q in [0, 2^bits-1], value = q * scale + bias. Codes are an LSB-first bit stream
//           in uint32 words (power-of-two bits: 32/bits codes per word; 3 and 5 bits: 8 codes per
//           3 or 5 bytes; 6 bits: 4 codes per 3 bytes).
//   mxfp4   bits 4, group 32: E2M1 codes (8 per uint32, low nibble first), one E8M0 scale byte.
//   mxfp8   bits 8, group 32: E4M3 codes (4 per uint32, low byte first), one E8M0 scale byte.
//   nvfp4   bits 4, group 16: E2M1 codes, one E4M3 scale byte (optionally with a float32
//           global scale).
// Affine reads bf16/f16 input widened to float32 (as MLX's CPU kernel does); the fp modes follow
// MLX's op graph, which computes in the input dtype with a rounding after every operation; the
// kernels here replay those roundings.
#pragma once

#include "ggq-quantize.h"  // src_dtype

#include <cstdint>

namespace ggq {

enum class mlx_mode : int32_t { affine = 0, mxfp4 = 1, nvfp4 = 2, mxfp8 = 3 };

struct mlx_params {
    mlx_mode mode = mlx_mode::affine;
    int bits = 4;
    int group_size = 64;
    bool has_global_scale = false;  // nvfp4 only
    float global_scale = 1.0f;
};

// Throws error_kind::value for a mode/bits/group size MLX rejects.
void mlx_check_params(const mlx_params & p, const char * fn);

// uint32 words and scale groups per row of n values; throw error_kind::shape if n does not fit.
int64_t mlx_row_words(const mlx_params & p, int64_t n, const char * fn);
int64_t mlx_row_groups(const mlx_params & p, int64_t n, const char * fn);

// Quantizes nrows x n values of `dtype` (C-contiguous). Outputs (C-contiguous):
//   w       nrows x mlx_row_words uint32
//   scales  nrows x mlx_row_groups, of `dtype` (affine) or uint8 (fp modes)
//   biases  like scales for affine; unused (may be null) for the fp modes.
// NaN/Inf input raises error_kind::nonfinite unless allow_nonfinite (then codes for those groups
// follow the same formulas but are not guaranteed to match MLX).
void mlx_quantize_rows(const mlx_params & p, const void * src, src_dtype dtype, int64_t nrows, int64_t n,
                       uint32_t * w, void * scales, void * biases, int nthreads, bool allow_nonfinite);

// Dequantizes into float32 values equal to what mlx.core.dequantize returns for output dtype
// `out_dtype` (affine: scales/biases of `scale_dtype`; the fp modes ignore scale_dtype). With an
// nvfp4 global scale MLX's result is float32 whatever out_dtype says; so is this one.
void mlx_dequantize_rows(const mlx_params & p, const uint32_t * w, const void * scales, const void * biases,
                         src_dtype scale_dtype, src_dtype out_dtype, float * out, int64_t nrows, int64_t n,
                         int nthreads);

// Format helpers (exposed for tests): E4M3 (MLX's rounding: nearest even, saturating at 448,
// NaN -> 0x7E|sign; 0x7F/0xFF decode to NaN).
uint8_t mlx_fp8_e4m3_encode(float x);
float mlx_fp8_e4m3_decode(uint8_t b);

}  // namespace ggq
