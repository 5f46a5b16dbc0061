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

// float32 value of every byte of an FP8 format: E4M3FN (no Inf, S.1111.111 is NaN) or E5M2
// (IEEE-like: exponent 31 is Inf/NaN). Every value is exact in float32.
struct f8_table {
    float v[256];
    f8_table(int exp_bits, int man_bits, bool fn) {
        const int bias = (1 << (exp_bits - 1)) - 1;
        const int emax = (1 << exp_bits) - 1, mmax = (1 << man_bits) - 1;
        for (int b = 0; b < 256; ++b) {
            const float sign = (b & 0x80) ? -1.0f : 1.0f;
            const int e = (b >> man_bits) & emax, m = b & mmax;
            if (fn && e == emax && m == mmax) {
                v[b] = NAN;
            } else if (!fn && e == emax) {
                v[b] = m == 0 ? sign * INFINITY : NAN;
            } else if (e == 0) {
                v[b] = sign * std::ldexp((float)m, 1 - bias - man_bits);
            } else {
                v[b] = sign * std::ldexp((float)((1 << man_bits) + m), e - bias - man_bits);
            }
        }
    }
};

const f8_table & e4m3_table() {
    static const f8_table t(4, 3, true);
    return t;
}

const f8_table & e5m2_table() {
    static const f8_table t(5, 2, false);
    return t;
}

void widen(const void * src, row_dtype dtype, float * dst, int64_t n) {
    if (dtype == row_dtype::f16) {
        const auto * h = static_cast<const uint16_t *>(src);
        for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
    } else if (dtype == row_dtype::bf16) {
        const auto * h = static_cast<const uint16_t *>(src);
        for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
    } else {
        const float * t = (dtype == row_dtype::f8_e4m3 ? e4m3_table() : e5m2_table()).v;
        const auto * b = static_cast<const uint8_t *>(src);
        for (int64_t i = 0; i < n; ++i) dst[i] = t[b[i]];
    }
}

float value_at(const void * src, row_dtype dtype, size_t i) {
    float v;
    if (dtype == row_dtype::f32) {
        std::memcpy(&v, static_cast<const char *>(src) + i * 4, 4);
    } else {
        widen(static_cast<const char *>(src) + i * row_itemsize(dtype), dtype, &v, 1);
    }
    return v;
}

// Argument checks of one job; throws naming its label.
void check_job(const quantize_job & j) {
    const std::string where = j.label.empty() ? std::string() : j.label + ": ";
    const type_traits & tt = checked_type_traits(j.type, "quantize");
    if (tt.quantize[GGQ_SIMD_GENERIC] == nullptr) {
        fail(error_kind::type, "quantize", where + "quantization to " + tt.name + " is not supported");
    }
    if (j.nrows < 0 || j.n_per_row <= 0) {
        fail(error_kind::shape, "quantize", where + "need at least one value per row, got " + std::to_string(j.nrows) +
                                                " rows of " + std::to_string(j.n_per_row));
    }
    (void)row_size(j.type, j.n_per_row);  // throws when n_per_row is not a multiple of the block size
    if (tt.requires_imatrix && j.imatrix == nullptr) {
        fail(error_kind::value, "quantize", where + tt.name + " requires an importance matrix (imatrix)");
    }
    if (j.imatrix != nullptr) {
        const int64_t bad = first_nonfinite(j.imatrix, j.n_per_row);
        if (bad >= 0) {
            fail(error_kind::nonfinite, "quantize", where + "importance weight " + std::to_string(bad) + " is NaN or Inf");
        }
        for (int64_t c = 0; c < j.n_per_row; ++c) {
            if (j.imatrix[c] < 0.0f) {
                fail(error_kind::value, "quantize", where + "importance weight " + std::to_string(c) + " is negative");
            }
        }
    }
}

}  // namespace

size_t row_itemsize(row_dtype dtype) {
    switch (dtype) {
        case row_dtype::f32: return 4;
        case row_dtype::f16:
        case row_dtype::bf16: return 2;
        default: return 1;
    }
}

void quantize_batch(const quantize_job * jobs, size_t njobs, const quantize_options & opt) {
    // all argument checks first: such an error leaves every output untouched
    std::vector<int64_t> first_task(njobs + 1, 0);
    std::vector<size_t> rsize(njobs);
    std::vector<int64_t> per_task(njobs);
    for (size_t k = 0; k < njobs; ++k) {
        check_job(jobs[k]);
        rsize[k] = row_size(jobs[k].type, jobs[k].n_per_row);
        per_task[k] = rows_per_task(jobs[k].n_per_row);
        first_task[k + 1] = first_task[k] + (jobs[k].nrows + per_task[k] - 1) / per_task[k];
    }
    const simd_level level = opt.simd < 0 ? simd_active_level() : (simd_level)opt.simd;
    std::vector<quantize_fn> fast(njobs);
    for (size_t k = 0; k < njobs; ++k) fast[k] = select_quantizer(jobs[k].type, level);

    // per job, the first row holding NaN/Inf (nrows when none): the lowest one is reported
    std::vector<std::atomic<int64_t>> first_bad(njobs);
    for (size_t k = 0; k < njobs; ++k) first_bad[k].store(jobs[k].nrows);

    parallel_for(first_task[njobs], resolve_threads(opt.nthreads), [&](int64_t task) {
        const size_t k = (size_t)(std::upper_bound(first_task.begin(), first_task.end(), task) - first_task.begin()) - 1;
        const quantize_job & j = jobs[k];
        const quantize_fn ref = get_type_traits(j.type).quantize[GGQ_SIMD_GENERIC];
        const int64_t r0 = (task - first_task[k]) * per_task[k];
        const int64_t nr = std::min(per_task[k], j.nrows - r0);
        const size_t n = (size_t)nr * (size_t)j.n_per_row;
        const float * x;
        thread_local std::vector<float> wide;  // widened rows, reused across tasks of this thread
        if (j.dtype == row_dtype::f32) {
            x = static_cast<const float *>(j.src) + (size_t)r0 * (size_t)j.n_per_row;
        } else {
            if (wide.size() < n) wide.resize(n);
            widen(static_cast<const char *>(j.src) + (size_t)r0 * (size_t)j.n_per_row * row_itemsize(j.dtype), j.dtype, wide.data(),
                  (int64_t)n);
            x = wide.data();
        }
        char * out = static_cast<char *>(j.dst) + (size_t)r0 * rsize[k];
        if (first_nonfinite(x, (int64_t)n) < 0) {
            fast[k](x, out, nr, j.n_per_row, j.imatrix);
            return;
        }
        // rows with NaN/Inf: an error by default; when allowed, the reference handles them so
        // that even such bytes do not depend on the SIMD level
        for (int64_t r = 0; r < nr; ++r) {
            const float * xr = x + (size_t)r * (size_t)j.n_per_row;
            if (first_nonfinite(xr, j.n_per_row) >= 0) {
                if (!opt.allow_nonfinite) {
                    int64_t cur = first_bad[k].load();
                    while (r0 + r < cur && !first_bad[k].compare_exchange_weak(cur, r0 + r)) {
                    }
                    return;
                }
                ref(xr, out + (size_t)r * rsize[k], 1, j.n_per_row, j.imatrix);
            } else {
                fast[k](xr, out + (size_t)r * rsize[k], 1, j.n_per_row, j.imatrix);
            }
        }
    });

    for (size_t k = 0; k < njobs; ++k) {
        const quantize_job & j = jobs[k];
        const int64_t bad_row = first_bad[k].load();
        if (bad_row >= j.nrows) continue;
        const size_t off = (size_t)bad_row * (size_t)j.n_per_row;
        int64_t col = 0;
        float v = 0.0f;
        for (; col < j.n_per_row; ++col) {
            v = value_at(j.src, j.dtype, off + (size_t)col);
            if (!std::isfinite(v)) break;
        }
        const std::string where = j.label.empty() ? std::string() : j.label + ": ";
        fail(error_kind::nonfinite, "quantize",
             where + "input row " + std::to_string(bad_row) + ", column " + std::to_string(col) + " is " + (std::isnan(v) ? "NaN" : "Inf") +
                 " (pass allow_nonfinite=True to quantize it anyway)");
    }
}

size_t quantize_rows(int32_t type, const void * src, row_dtype dtype, void * dst, int64_t nrows, int64_t n_per_row,
                     const quantize_options & opt) {
    quantize_job j;
    j.type = type;
    j.src = src;
    j.dtype = dtype;
    j.dst = dst;
    j.nrows = nrows;
    j.n_per_row = n_per_row;
    j.imatrix = opt.imatrix;
    quantize_batch(&j, 1, opt);
    return (size_t)nrows * row_size(type, n_per_row);
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
