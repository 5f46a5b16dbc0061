#include "ggq-block-check.h"

#include "ggq-common.h"
#include "ggq-parallel.h"
#include "ggq-quantize.h"
#include "ggq-types.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

namespace ggq {

namespace {

// Offsets of the fp16 scale fields in one block; n == 0: not a type of this kind.
struct half_fields {
    int n = 0;
    size_t off[2] = {0, 0};
};

#define GGQ_FIELDS1(blk, a) half_fields{1, {offsetof(blk, a), 0}}
#define GGQ_FIELDS2(blk, a, b) half_fields{2, {offsetof(blk, a), offsetof(blk, b)}}

half_fields fields_of(int32_t type) {
    switch (type) {
        case GGQ_TYPE_Q4_0: return GGQ_FIELDS1(block_q4_0, d);
        case GGQ_TYPE_Q4_1: return GGQ_FIELDS2(block_q4_1, d, m);
        case GGQ_TYPE_Q5_0: return GGQ_FIELDS1(block_q5_0, d);
        case GGQ_TYPE_Q5_1: return GGQ_FIELDS2(block_q5_1, d, m);
        case GGQ_TYPE_Q8_0: return GGQ_FIELDS1(block_q8_0, d);
        case GGQ_TYPE_Q8_1: return GGQ_FIELDS2(block_q8_1, d, s);
        case GGQ_TYPE_Q2_K: return GGQ_FIELDS2(block_q2_K, d, dmin);
        case GGQ_TYPE_Q3_K: return GGQ_FIELDS1(block_q3_K, d);
        case GGQ_TYPE_Q4_K: return GGQ_FIELDS2(block_q4_K, d, dmin);
        case GGQ_TYPE_Q5_K: return GGQ_FIELDS2(block_q5_K, d, dmin);
        case GGQ_TYPE_Q6_K: return GGQ_FIELDS1(block_q6_K, d);
        case GGQ_TYPE_IQ2_XXS: return GGQ_FIELDS1(block_iq2_xxs, d);
        case GGQ_TYPE_IQ2_XS: return GGQ_FIELDS1(block_iq2_xs, d);
        case GGQ_TYPE_IQ2_S: return GGQ_FIELDS1(block_iq2_s, d);
        case GGQ_TYPE_IQ3_XXS: return GGQ_FIELDS1(block_iq3_xxs, d);
        case GGQ_TYPE_IQ3_S: return GGQ_FIELDS1(block_iq3_s, d);
        case GGQ_TYPE_IQ1_S: return GGQ_FIELDS1(block_iq1_s, d);
        case GGQ_TYPE_IQ4_NL: return GGQ_FIELDS1(block_iq4_nl, d);
        case GGQ_TYPE_IQ4_XS: return GGQ_FIELDS1(block_iq4_xs, d);
        case GGQ_TYPE_TQ1_0: return GGQ_FIELDS1(block_tq1_0, d);
        case GGQ_TYPE_TQ2_0: return GGQ_FIELDS1(block_tq2_0, d);
        case GGQ_TYPE_Q1_0: return GGQ_FIELDS1(block_q1_0, d);
        case GGQ_TYPE_Q2_0: return GGQ_FIELDS1(block_q2_0, d);
        default: return {};
    }
}

#undef GGQ_FIELDS1
#undef GGQ_FIELDS2

bool half_nonfinite(const uint8_t * p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return (h & 0x7C00u) == 0x7C00u;  // exponent all ones: Inf or NaN
}

}  // namespace

namespace {

// The first non-finite block of one row, or -1.
int64_t row_nonfinite_block(int32_t type, const type_traits & tt, const half_fields & hf, const uint8_t * row, int64_t n_per_row,
                            std::vector<float> & scratch) {
    const int64_t nblocks = n_per_row / tt.blck_size;
    if (hf.n > 0) {
        for (int64_t b = 0; b < nblocks; ++b) {
            const uint8_t * blk = row + (size_t)b * tt.type_size;
            if (half_nonfinite(blk + hf.off[0]) || (hf.n > 1 && half_nonfinite(blk + hf.off[1]))) return b;
        }
        return -1;
    }
    if (type == GGQ_TYPE_F16 || type == GGQ_TYPE_BF16) {
        // Inf/NaN: magnitude bits at or above the all-ones exponent. A max reduction vectorizes.
        const uint16_t inf = type == GGQ_TYPE_F16 ? 0x7C00u : 0x7F80u;
        const auto * h = reinterpret_cast<const uint16_t *>(row);
        uint16_t mx = 0;
        for (int64_t i = 0; i < n_per_row; ++i) mx = std::max<uint16_t>(mx, h[i] & 0x7FFFu);
        if (mx < inf) return -1;
        for (int64_t i = 0; i < n_per_row; ++i) {
            if ((h[i] & 0x7FFFu) >= inf) return i;
        }
        return -1;
    }
    // F32 keeps finite input finite; NVFP4 decodes every scale byte to at most 240 (x 6)
    if (type == GGQ_TYPE_F32 || type == GGQ_TYPE_NVFP4 || tt.to_float == nullptr) return -1;
    if (type == GGQ_TYPE_MXFP4) {  // only an E8M0 exponent near the top can overflow (x 6)
        bool large = false;
        for (int64_t b = 0; b < nblocks; ++b) large |= row[(size_t)b * tt.type_size + offsetof(block_mxfp4, e)] >= 0xF0;
        if (!large) return -1;
    }
    scratch.resize((size_t)n_per_row);
    dequantize_rows(type, row, scratch.data(), 1, n_per_row, 1);
    for (int64_t i = 0; i < n_per_row; ++i) {
        if (!std::isfinite(scratch[i])) return i / tt.blck_size;
    }
    return -1;
}

}  // namespace

block_position first_nonfinite_block(int32_t type, const void * data, int64_t nrows, int64_t n_per_row, int nthreads) {
    const type_traits & tt = checked_type_traits(type, "quantize");
    const size_t rsize = row_size(type, n_per_row);
    const auto * base = static_cast<const uint8_t *>(data);
    const half_fields hf = fields_of(type);
    constexpr int64_t chunk = 64;  // rows per task
    std::atomic<int64_t> first_row{nrows};
    // reading a scale or two per block is cheaper than waking threads
    const int threads = hf.n > 0 ? 1 : resolve_threads(nthreads);
    parallel_for((nrows + chunk - 1) / chunk, threads, [&](int64_t c) {
        std::vector<float> scratch;
        for (int64_t r = c * chunk; r < std::min(nrows, (c + 1) * chunk) && r < first_row.load(); ++r) {
            if (row_nonfinite_block(type, tt, hf, base + (size_t)r * rsize, n_per_row, scratch) >= 0) {
                int64_t cur = first_row.load();
                while (r < cur && !first_row.compare_exchange_weak(cur, r)) {
                }
                return;
            }
        }
    });
    const int64_t r = first_row.load();
    if (r == nrows) return {};
    std::vector<float> scratch;
    return {r, row_nonfinite_block(type, tt, hf, base + (size_t)r * rsize, n_per_row, scratch)};
}

}  // namespace ggq
