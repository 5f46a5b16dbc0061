// MLX quantization modes. See mlx-quant.h for the formats. The arithmetic below replays MLX's CPU
// results operation by operation: affine works in float32 on the widened input (MLX's CPU kernel);
// the fp modes round every intermediate to the dtype MLX's op graph computes it in.
#include "mlx-quant.h"

#include "ggq-error.h"
#include "ggq-fp16.h"
#include "ggq-parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace ggq {

namespace {

// The E2M1 values in code order (code = sign << 3 | magnitude index).
constexpr float k_fp4_values[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// ---- storing a float32 in a narrower dtype, as MLX's float16_t / bfloat16_t types do

inline uint16_t to_bf16_bits(float x) {
    if (std::isnan(x)) {
        return 0x7FC0;  // MLX writes one positive quiet NaN
    }
    const uint32_t u = f32_bits(x);
    return (uint16_t)((u + ((u >> 16) & 1u) + 0x7FFFu) >> 16);
}

template <src_dtype T>
inline float rnd(float x) {
    if constexpr (T == src_dtype::f32) {
        return x;
    } else if constexpr (T == src_dtype::f16) {
        return fp16_to_fp32(fp32_to_fp16(x));
    } else {
        return bf16_to_fp32(to_bf16_bits(x));
    }
}

template <src_dtype T>
inline float load(const void * p, int64_t i) {
    if constexpr (T == src_dtype::f32) {
        return static_cast<const float *>(p)[i];
    } else if constexpr (T == src_dtype::f16) {
        return fp16_to_fp32(static_cast<const uint16_t *>(p)[i]);
    } else {
        return bf16_to_fp32(static_cast<const uint16_t *>(p)[i]);
    }
}

template <src_dtype T>
inline void store(void * p, int64_t i, float x) {
    if constexpr (T == src_dtype::f32) {
        static_cast<float *>(p)[i] = x;
    } else if constexpr (T == src_dtype::f16) {
        static_cast<uint16_t *>(p)[i] = fp32_to_fp16(x);
    } else {
        static_cast<uint16_t *>(p)[i] = to_bf16_bits(x);
    }
}

void widen_row(const void * src, src_dtype dtype, int64_t n, float * dst) {
    switch (dtype) {
        case src_dtype::f32: std::memcpy(dst, src, (size_t)n * sizeof(float)); break;
        case src_dtype::f16:
            for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(static_cast<const uint16_t *>(src)[i]);
            break;
        case src_dtype::bf16:
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(static_cast<const uint16_t *>(src)[i]);
            break;
    }
}

size_t itemsize(src_dtype d) { return d == src_dtype::f32 ? 4 : 2; }

bool all_finite(const float * x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; ++i) {
        bad |= (uint32_t)((f32_bits(x[i]) & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

// ---- code packing: an LSB-first bit stream, written in packs of whole bytes as MLX does

struct pack_shape {
    int per_pack;    // codes per pack
    int pack_bytes;  // bytes per pack
};

inline pack_shape pack_of(int bits) {
    if (bits == 3 || bits == 5) return {8, bits};
    if (bits == 6) return {4, 3};
    return {32 / bits, 4};
}

void pack_codes(const uint8_t * q, int count, int bits, uint8_t * dst) {
    if (bits == 8) {
        std::memcpy(dst, q, (size_t)count);
        return;
    }
    if (bits == 4) {
        for (int j = 0; j < count / 2; ++j) dst[j] = (uint8_t)(q[2 * j] | (q[2 * j + 1] << 4));
        return;
    }
    const pack_shape ps = pack_of(bits);
    for (int u = 0; u < count / ps.per_pack; ++u) {
        uint64_t acc = 0;
        for (int k = 0; k < ps.per_pack; ++k) acc |= (uint64_t)q[u * ps.per_pack + k] << (k * bits);
        for (int b = 0; b < ps.pack_bytes; ++b) dst[u * ps.pack_bytes + b] = (uint8_t)(acc >> (8 * b));
    }
}

void unpack_codes(const uint8_t * src, int count, int bits, uint8_t * q) {
    if (bits == 8) {
        std::memcpy(q, src, (size_t)count);
        return;
    }
    if (bits == 4) {
        for (int j = 0; j < count / 2; ++j) {
            q[2 * j] = src[j] & 15;
            q[2 * j + 1] = src[j] >> 4;
        }
        return;
    }
    const pack_shape ps = pack_of(bits);
    const uint64_t mask = (1u << bits) - 1;
    for (int u = 0; u < count / ps.per_pack; ++u) {
        uint64_t acc = 0;
        for (int b = 0; b < ps.pack_bytes; ++b) acc |= (uint64_t)src[u * ps.pack_bytes + b] << (8 * b);
        for (int k = 0; k < ps.per_pack; ++k) q[u * ps.per_pack + k] = (uint8_t)((acc >> (k * bits)) & mask);
    }
}

// ---- affine

// Quantizes one group (MLX's CPU kernel, float32 arithmetic). Writes gs codes; returns scale, bias.
inline void affine_group(const float * x, int gs, int bits, uint8_t * q, float & scale_out, float & bias_out) {
    const float n_bins = (float)((1 << bits) - 1);
    const float eps = 1e-7f;
    float w_max = -std::numeric_limits<float>::infinity();
    float w_min = std::numeric_limits<float>::infinity();
    for (int j = 0; j < gs; ++j) {
        w_max = x[j] > w_max ? x[j] : w_max;
        w_min = x[j] < w_min ? x[j] : w_min;
    }
    if (bits == 1) {  // MLX's 1-bit mode: bias = min, scale = max - min, no zero-point snapping
        float scale = w_max - w_min;
        scale = scale < eps ? eps : scale;
        for (int j = 0; j < gs; ++j) {
            const float r = std::nearbyint((x[j] - w_min) / scale);
            q[j] = r > 0.0f ? (r < 1.0f ? 0 : 1) : 0;
        }
        scale_out = scale;
        bias_out = w_min;
        return;
    }
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
    // round half to even via the 1.5 * 2^23 trick; clamping to [-1, n_bins + 1] first keeps the
    // trick exact and does not change the clamped result
    const float magic = 12582912.0f;
    const float hi = n_bins + 1.0f;
    for (int j = 0; j < gs; ++j) {
        float v = (x[j] - bias) / scale;
        v = v > -1.0f ? v : -1.0f;
        v = v < hi ? v : hi;
        float r = (v + magic) - magic;
        r = r > 0.0f ? r : 0.0f;
        r = r < n_bins ? r : n_bins;
        q[j] = (uint8_t)(int32_t)r;
    }
    scale_out = scale;
    bias_out = bias;
}

template <src_dtype T>
void affine_row(const float * x, int64_t n, int bits, int gs, uint8_t * wrow, void * srow, void * brow) {
    uint8_t q[128];
    const int64_t gbytes = (int64_t)gs * bits / 8;
    for (int64_t g = 0; g < n / gs; ++g) {
        float s, b;
        affine_group(x + g * gs, gs, bits, q, s, b);
        pack_codes(q, gs, bits, wrow + g * gbytes);
        store<T>(srow, g, s);
        store<T>(brow, g, b);
    }
}

// ---- E4M3 / E2M1

// E2M1 code MLX's argmin picks for a value a already rounded to the dtype D the distances are
// computed in: the first table entry whose rounded distance |D(a - v)| is smallest.
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
    constexpr float mags[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    const float b = std::fabs(a);
    if (!(b < 8.0f)) {
        return fp4_code_scan<D>(a);
    }
    int k = b < 2.0f ? (int)(b * 2.0f) : (b < 3.0f ? 4 : (b < 4.0f ? 5 : (b < 6.0f ? 6 : 7)));
    if (k < 7) {
        const float d_lo = rnd<D>(b - mags[k]);
        const float d_hi = rnd<D>(mags[k + 1] - b);
        k += d_hi < d_lo ? 1 : 0;
    }
    return (uint8_t)((a < 0.0f && k != 0) ? (k | 8) : k);
}

// mxfp4 / mxfp8: E8M0 scale from round(log2(max|w| / maxval)), all in the input dtype T.
template <src_dtype T, bool FP8>
void mx_row(const float * x, int64_t n, uint8_t * wrow, uint8_t * srow) {
    constexpr int gs = 32;
    const float maxval = FP8 ? 448.0f : 6.0f;
    uint8_t q[gs];
    for (int64_t g = 0; g < n / gs; ++g) {
        const float * xg = x + g * gs;
        float amax = 0.0f;
        for (int j = 0; j < gs; ++j) {
            const float a = std::fabs(xg[j]);
            amax = a > amax ? a : amax;
        }
        const float s = rnd<T>(amax / maxval);
        float e = 0.0f;
        if (s != 0.0f) {
            e = std::ceil(std::log2(s));
        }
        const float p = rnd<T>(std::ldexp(1.0f, (int)e));
        for (int j = 0; j < gs; ++j) {
            const float a = rnd<T>(xg[j] / p);
            q[j] = FP8 ? mlx_fp8_e4m3_encode(a) : fp4_code<T>(a);
        }
        pack_codes(q, gs, FP8 ? 8 : 4, wrow + g * (FP8 ? gs : gs / 2));
        // MLX converts the float e + 127 to uint8 through a 32-bit int: out-of-range values wrap
        srow[g] = (uint8_t)(int32_t)rnd<T>(e + 127.0f);
    }
}

// nvfp4: E4M3 scale max|w| / 6 (times 448*6/global_scale when given); the codes' distances are
// float32 because MLX multiplies by a float32 encode factor.
template <src_dtype T>
void nv_row(const float * x, int64_t n, bool has_gs, float enc, uint8_t * wrow, uint8_t * srow) {
    constexpr int gs = 16;
    uint8_t q[gs];
    for (int64_t g = 0; g < n / gs; ++g) {
        const float * xg = x + g * gs;
        float amax = 0.0f;
        for (int j = 0; j < gs; ++j) {
            const float a = std::fabs(xg[j]);
            amax = a > amax ? a : amax;
        }
        float s = rnd<T>(amax / 6.0f);
        if (has_gs) s = s * enc;
        const uint8_t sb = mlx_fp8_e4m3_encode(s);
        const float sd = rnd<T>(mlx_fp8_e4m3_decode(sb));
        for (int j = 0; j < gs; ++j) {
            float a = rnd<T>(xg[j] / sd);
            if (has_gs) a = a * enc;
            q[j] = fp4_code<src_dtype::f32>(a);
        }
        pack_codes(q, gs, 4, wrow + g * (gs / 2));
        srow[g] = sb;
    }
}

// ---- dequantization

template <src_dtype T, src_dtype U>
void affine_deq_row(const uint8_t * wrow, const void * srow, const void * brow, int bits, int gs, int64_t n,
                    float * out) {
    uint8_t q[128];
    const int64_t gbytes = (int64_t)gs * bits / 8;
    for (int64_t g = 0; g < n / gs; ++g) {
        unpack_codes(wrow + g * gbytes, gs, bits, q);
        const float s = load<T>(srow, g);
        const float b = load<T>(brow, g);
        float * o = out + g * gs;
        for (int j = 0; j < gs; ++j) {
            o[j] = rnd<U>(rnd<T>(rnd<T>((float)q[j] * s) + b));
        }
    }
}

template <src_dtype U>
void fp_deq_row(const mlx_params & p, const uint8_t * wrow, const uint8_t * srow, int64_t n, float * out) {
    const int gs = p.group_size;
    const bool fp8 = p.mode == mlx_mode::mxfp8;
    const float inv = p.has_global_scale ? p.global_scale / 2688.0f : 1.0f;
    uint8_t q[32];
    for (int64_t g = 0; g < n / gs; ++g) {
        unpack_codes(wrow + g * (fp8 ? gs : gs / 2), gs, fp8 ? 8 : 4, q);
        float * o = out + g * gs;
        if (p.mode == mlx_mode::nvfp4) {
            const float s = rnd<U>(mlx_fp8_e4m3_decode(srow[g]));
            if (p.has_global_scale) {
                const float s32 = s * inv;  // float32 from here on, as in MLX
                for (int j = 0; j < gs; ++j) o[j] = k_fp4_values[q[j]] * s32;
            } else {
                for (int j = 0; j < gs; ++j) o[j] = rnd<U>(k_fp4_values[q[j]] * s);
            }
        } else {
            const float s = rnd<U>(std::ldexp(1.0f, (int)srow[g] - 127));
            if (fp8) {
                for (int j = 0; j < gs; ++j) o[j] = rnd<U>(rnd<U>(mlx_fp8_e4m3_decode(q[j])) * s);
            } else {
                for (int j = 0; j < gs; ++j) o[j] = rnd<U>(k_fp4_values[q[j]] * s);
            }
        }
    }
}

// Calls f.template operator()<T>() for the runtime dtype.
template <typename F>
void with_dtype(src_dtype d, F && f) {
    switch (d) {
        case src_dtype::f32: f.template operator()<src_dtype::f32>(); break;
        case src_dtype::f16: f.template operator()<src_dtype::f16>(); break;
        case src_dtype::bf16: f.template operator()<src_dtype::bf16>(); break;
    }
}

int64_t rows_per_task(int64_t n) {
    constexpr int64_t k_values_per_task = 1 << 16;
    return std::max<int64_t>(1, k_values_per_task / std::max<int64_t>(1, n));
}

const char * mode_name(mlx_mode m) {
    switch (m) {
        case mlx_mode::affine: return "affine";
        case mlx_mode::mxfp4: return "mxfp4";
        case mlx_mode::nvfp4: return "nvfp4";
        case mlx_mode::mxfp8: return "mxfp8";
    }
    return "?";
}

}  // namespace

uint8_t mlx_fp8_e4m3_encode(float x) {
    uint32_t u = f32_bits(x);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint8_t r;
    if (u >= 0x43E00000u) {  // >= 448 (also Inf, NaN): saturate to 448
        r = 0x7E;
    } else if (u < (121u << 23)) {  // below 2^-6: subnormal; adding 2^14 rounds to a multiple of 2^-9
        const float t = f32_from_bits(u) + 16384.0f;
        r = (uint8_t)(f32_bits(t) - (141u << 23));
    } else {  // normal: rebias the exponent and round the 20 dropped mantissa bits to nearest even
        u += ((uint32_t)(7 - 127) << 23) + 0x7FFFFu + ((u >> 20) & 1u);
        r = (uint8_t)(u >> 20);
    }
    return (uint8_t)(r | (sign >> 24));
}

float mlx_fp8_e4m3_decode(uint8_t b) {
    const int e = (b >> 3) & 15;
    const int m = b & 7;
    if ((b & 0x7F) == 0x7F) {  // E4M3FN's only NaN (MLX >= 0.32.4 decodes it so)
        return (b & 0x80) ? -std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::quiet_NaN();
    }
    const float v = e == 0 ? (float)m * 0.001953125f : std::ldexp(1.0f + (float)m * 0.125f, e - 7);
    return (b & 0x80) ? -v : v;
}

void mlx_check_params(const mlx_params & p, const char * fn) {
    switch (p.mode) {
        case mlx_mode::affine:
            if (p.group_size != 32 && p.group_size != 64 && p.group_size != 128) {
                fail(error_kind::value, fn, "affine group size " + std::to_string(p.group_size) +
                                                " is not supported; the supported group sizes are 32, 64 and 128");
            }
            if (p.bits < 1 || p.bits > 8 || p.bits == 7) {
                fail(error_kind::value, fn, "affine bits " + std::to_string(p.bits) +
                                                " is not supported; the supported bits are 1, 2, 3, 4, 5, 6 and 8");
            }
            if (p.has_global_scale) fail(error_kind::value, fn, "a global scale is only supported for nvfp4");
            return;
        case mlx_mode::mxfp4:
        case mlx_mode::nvfp4:
        case mlx_mode::mxfp8: {
            const int want_gs = p.mode == mlx_mode::nvfp4 ? 16 : 32;
            const int want_bits = p.mode == mlx_mode::mxfp8 ? 8 : 4;
            if (p.group_size != want_gs) {
                fail(error_kind::value, fn, std::string(mode_name(p.mode)) + " requires group size " +
                                                std::to_string(want_gs) + ", got " + std::to_string(p.group_size));
            }
            if (p.bits != want_bits) {
                fail(error_kind::value, fn, std::string(mode_name(p.mode)) + " requires bits " +
                                                std::to_string(want_bits) + ", got " + std::to_string(p.bits));
            }
            if (p.has_global_scale && p.mode != mlx_mode::nvfp4) {
                fail(error_kind::value, fn, "a global scale is only supported for nvfp4");
            }
            if (p.has_global_scale && !std::isfinite(p.global_scale)) {
                fail(error_kind::nonfinite, fn, "the global scale is NaN or Inf");
            }
            return;
        }
    }
    fail(error_kind::value, fn, "unknown MLX quantization mode " + std::to_string((int)p.mode));
}

int64_t mlx_row_groups(const mlx_params & p, int64_t n, const char * fn) {
    mlx_check_params(p, fn);
    if (n <= 0 || n % p.group_size != 0) {
        fail(error_kind::shape, fn, "the last dimension " + std::to_string(n) +
                                        " must be a positive multiple of the group size " + std::to_string(p.group_size));
    }
    return n / p.group_size;
}

int64_t mlx_row_words(const mlx_params & p, int64_t n, const char * fn) {
    mlx_row_groups(p, n, fn);
    return n * p.bits / 32;  // group sizes are multiples of 16 and 16 * bits is a multiple of 32 here
}

void mlx_quantize_rows(const mlx_params & p, const void * src, src_dtype dtype, int64_t nrows, int64_t n,
                       uint32_t * w, void * scales, void * biases, int nthreads, bool allow_nonfinite) {
    const int64_t nwords = mlx_row_words(p, n, "mlx_quantize");
    const int64_t ngroups = n / p.group_size;
    if (nrows < 0) fail(error_kind::shape, "mlx_quantize", "negative row count");
    if (p.mode == mlx_mode::affine && biases == nullptr) {
        fail(error_kind::value, "mlx_quantize", "affine quantization needs a biases buffer");
    }
    const size_t in_item = itemsize(dtype);
    const size_t sc_item = p.mode == mlx_mode::affine ? in_item : 1;
    const float enc = p.has_global_scale ? 2688.0f / p.global_scale : 1.0f;
    const int64_t rpt = rows_per_task(n);
    const int64_t ntasks = (nrows + rpt - 1) / rpt;
    parallel_for(ntasks, resolve_threads(nthreads), [&](int64_t t) {
        std::vector<float> buf((size_t)n);
        const int64_t r0 = t * rpt;
        const int64_t r1 = std::min(nrows, r0 + rpt);
        for (int64_t r = r0; r < r1; ++r) {
            widen_row(static_cast<const char *>(src) + (size_t)r * n * in_item, dtype, n, buf.data());
            if (!allow_nonfinite && !all_finite(buf.data(), n)) {
                for (int64_t j = 0; j < n; ++j) {
                    if (!std::isfinite(buf[(size_t)j])) {
                        fail(error_kind::nonfinite, "mlx_quantize",
                             "NaN or Inf at row " + std::to_string(r) + ", column " + std::to_string(j));
                    }
                }
            }
            auto * wrow = reinterpret_cast<uint8_t *>(w + r * nwords);
            void * srow = static_cast<char *>(scales) + (size_t)(r * ngroups) * sc_item;
            void * brow = biases ? static_cast<char *>(biases) + (size_t)(r * ngroups) * sc_item : nullptr;
            auto * sbytes = static_cast<uint8_t *>(srow);
            with_dtype(dtype, [&]<src_dtype T>() {
                switch (p.mode) {
                    case mlx_mode::affine: affine_row<T>(buf.data(), n, p.bits, p.group_size, wrow, srow, brow); break;
                    case mlx_mode::mxfp4: mx_row<T, false>(buf.data(), n, wrow, sbytes); break;
                    case mlx_mode::mxfp8: mx_row<T, true>(buf.data(), n, wrow, sbytes); break;
                    case mlx_mode::nvfp4: nv_row<T>(buf.data(), n, p.has_global_scale, enc, wrow, sbytes); break;
                }
            });
        }
    });
}

void mlx_dequantize_rows(const mlx_params & p, const uint32_t * w, const void * scales, const void * biases,
                         src_dtype scale_dtype, src_dtype out_dtype, float * out, int64_t nrows, int64_t n,
                         int nthreads) {
    const int64_t nwords = mlx_row_words(p, n, "mlx_dequantize");
    const int64_t ngroups = n / p.group_size;
    if (p.mode == mlx_mode::affine && biases == nullptr) {
        fail(error_kind::value, "mlx_dequantize", "affine dequantization needs biases");
    }
    const size_t sc_item = p.mode == mlx_mode::affine ? itemsize(scale_dtype) : 1;
    const int64_t rpt = rows_per_task(n);
    const int64_t ntasks = (nrows + rpt - 1) / rpt;
    parallel_for(ntasks, resolve_threads(nthreads), [&](int64_t t) {
        const int64_t r0 = t * rpt;
        const int64_t r1 = std::min(nrows, r0 + rpt);
        for (int64_t r = r0; r < r1; ++r) {
            const auto * wrow = reinterpret_cast<const uint8_t *>(w + r * nwords);
            const void * srow = static_cast<const char *>(scales) + (size_t)(r * ngroups) * sc_item;
            float * orow = out + r * n;
            with_dtype(out_dtype, [&]<src_dtype U>() {
                if (p.mode == mlx_mode::affine) {
                    const void * brow = static_cast<const char *>(biases) + (size_t)(r * ngroups) * sc_item;
                    with_dtype(scale_dtype, [&]<src_dtype T>() {
                        affine_deq_row<T, U>(wrow, srow, brow, p.bits, p.group_size, n, orow);
                    });
                } else {
                    fp_deq_row<U>(p, wrow, static_cast<const uint8_t *>(srow), n, orow);
                }
            });
        }
    });
}

}  // namespace ggq
