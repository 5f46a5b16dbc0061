// After quantizing finite input: does any block decode to Inf or NaN? (Values near FLT_MAX make
// ggml's scales overflow their fp16 fields; ggml writes those blocks as they come.)
#pragma once

#include <cstdint>

namespace ggq {

struct block_position {
    int64_t row = -1;    // -1: every block decodes to finite values
    int64_t block = -1;  // block index within the row
};

// Scans nrows rows of quantized `type` data (row_size(type, n_per_row) bytes each). For the types
// whose blocks keep their scales in fp16 fields and decode as scale * small integer (+ scale *
// small integer), a block decodes to a non-finite value exactly when one of those fields is Inf
// or NaN, so only those few bytes per block are read; F16/BF16 rows are checked value by value;
// MXFP4 rows with an exponent near the top and IQ1_M rows by dequantizing them; NVFP4 always
// decodes to finite values. Rows are scanned in parallel;
// the answer (the first such block) does not depend on nthreads (<= 0: all threads).
block_position first_nonfinite_block(int32_t type, const void * data, int64_t nrows, int64_t n_per_row, int nthreads);

}  // namespace ggq
