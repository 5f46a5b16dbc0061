#include "ggq-quantize.h"

#include "ggq-error.h"
#include "ggq-fp16.h"
#include "ggq-parallel.h"
#include "ggq-types.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace ggq {

namespace {

// Rows per work item: enough values per item to amortise scheduling, at least one row.
int64_t rows_per_task(int64_t n_per_row) {
    constexpr int64_t k_values_per_task = 1 << 16;
    return std::max<int64_t>(1, k_values_per_task / std::max<int64_t>(1, n_per_row));
}

// Index of the first non-finite value, or -1. Written branch-free so that it vectorizes.
int64_t first_nonfinite(const float * x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, x + i, sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    if (!bad) {
        return -1;
    }
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(x[i])) {
            return i;
        }
    }
    return -1;
}

void widen(const void * src, src_dtype dtype, float * dst, int64_t n) {
    if (dtype == src_dtype::f16) {
        const auto * h = static_cast<const uint16_t *>(src);
        for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
    } else {
        const auto * h = static_cast<const uint16_t *>(src);
        for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
    }
}

size_t src_itemsize(src_dtype dtype) { return dtype == src_dtype::f32 ? 4 : 2; }

}  // namespace

size_t quantize_rows(int32_t type, const void * src, src_dtype dtype, void * dst, int64_t nrows, int64_t n_per_row,
                     const quantize_options & opt) {
    const type_traits & tt = checked_type_traits(type, "quantize");
    if (tt.quantize[GGQ_SIMD_GENERIC] == nullptr) {
        fail(error_kind::type, "quantize", std::string("quantization to ") + tt.name + " is not supported");
    }
    if (nrows < 0 || n_per_row <= 0) {
        fail(error_kind::shape, "quantize", "need at least one value per row, got " + std::to_string(nrows) + " rows of " +
                                                std::to_string(n_per_row));
    }
    const size_t rsize = row_size(type, n_per_row);
    if (tt.requires_imatrix && opt.imatrix == nullptr) {
        fail(error_kind::value, "quantize", std::string(tt.name) + " requires an importance matrix (imatrix)");
    }
    if (opt.imatrix != nullptr) {
        const int64_t bad = first_nonfinite(opt.imatrix, n_per_row);
        for (int64_t j = 0; j < n_per_row && bad < 0; ++j) {
            if (opt.imatrix[j] < 0.0f) {
                fail(error_kind::value, "quantize", "importance weight " + std::to_string(j) + " is negative");
            }
        }
        if (bad >= 0) {
            fail(error_kind::nonfinite, "quantize", "importance weight " + std::to_string(bad) + " is NaN or Inf");
        }
    }
    const simd_level level = opt.simd < 0 ? simd_active_level() : (simd_level)opt.simd;
    const quantize_fn fast = select_quantizer(type, level);
    const quantize_fn ref = tt.quantize[GGQ_SIMD_GENERIC];

    const int64_t per_task = rows_per_task(n_per_row);
    const int64_t ntasks = (nrows + per_task - 1) / per_task;
    std::atomic<int64_t> first_bad_row{nrows};
    const int nthreads = resolve_threads(opt.nthreads);

    parallel_for(ntasks, nthreads, [&](int64_t task) {
        const int64_t r0 = task * per_task;
        const int64_t nr = std::min(per_task, nrows - r0);
        const size_t n = (size_t)nr * (size_t)n_per_row;
        const float * x;
        std::vector<float> wide;
        if (dtype == src_dtype::f32) {
            x = static_cast<const float *>(src) + (size_t)r0 * (size_t)n_per_row;
        } else {
            wide.resize(n);
            widen(static_cast<const char *>(src) + (size_t)r0 * (size_t)n_per_row * src_itemsize(dtype), dtype, wide.data(), (int64_t)n);
            x = wide.data();
        }
        char * out = static_cast<char *>(dst) + (size_t)r0 * rsize;
        if (first_nonfinite(x, (int64_t)n) < 0) {
            fast(x, out, nr, n_per_row, opt.imatrix);
            return;
        }
        // rows with NaN/Inf: an error by default; when allowed, the reference handles them so
        // that even such bytes do not depend on the SIMD level
        for (int64_t r = 0; r < nr; ++r) {
            const float * xr = x + (size_t)r * (size_t)n_per_row;
            if (first_nonfinite(xr, n_per_row) >= 0) {
                if (!opt.allow_nonfinite) {
                    int64_t cur = first_bad_row.load();
                    while (r0 + r < cur && !first_bad_row.compare_exchange_weak(cur, r0 + r)) {
                    }
                    return;
                }
                ref(xr, out + (size_t)r * rsize, 1, n_per_row, opt.imatrix);
            } else {
                fast(xr, out + (size_t)r * rsize, 1, n_per_row, opt.imatrix);
            }
        }
    });

    const int64_t bad_row = first_bad_row.load();
    if (bad_row < nrows) {
        const size_t off = (size_t)bad_row * (size_t)n_per_row;
        float v;
        int64_t col = 0;
        for (; col < n_per_row; ++col) {
            if (dtype == src_dtype::f32) {
                v = static_cast<const float *>(src)[off + col];
            } else {
                widen(static_cast<const char *>(src) + (off + col) * 2, dtype, &v, 1);
            }
            if (!std::isfinite(v)) break;
        }
        fail(error_kind::nonfinite, "quantize",
             "input row " + std::to_string(bad_row) + ", column " + std::to_string(col) + " is " + (std::isnan(v) ? "NaN" : "Inf") +
                 " (pass allow_nonfinite=True to quantize it anyway)");
    }
    return (size_t)nrows * rsize;
}

void dequantize_rows(int32_t type, const void * src, float * dst, int64_t nrows, int64_t n_per_row, int nthreads) {
    const type_traits & tt = checked_type_traits(type, "dequantize");
    if (tt.to_float == nullptr) {
        fail(error_kind::type, "dequantize", std::string("dequantization of ") + tt.name + " is not supported");
    }
    if (nrows < 0 || n_per_row <= 0) {
        fail(error_kind::shape, "dequantize", "need at least one value per row");
    }
    const size_t rsize = row_size(type, n_per_row);
    const int64_t per_task = rows_per_task(n_per_row);
    const int64_t ntasks = (nrows + per_task - 1) / per_task;
    parallel_for(ntasks, resolve_threads(nthreads), [&](int64_t task) {
        const int64_t r0 = task * per_task;
        const int64_t nr = std::min(per_task, nrows - r0);
        tt.to_float(static_cast<const char *>(src) + (size_t)r0 * rsize, dst + (size_t)r0 * (size_t)n_per_row, nr * n_per_row);
    });
}

}  // namespace ggq
