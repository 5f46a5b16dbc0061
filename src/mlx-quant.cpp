// MLX quantization modes. See mlx-quant.h for the formats. The arithmetic below replays MLX's CPU
// results operation by operation: affine works in float32 on the widened input (MLX's CPU kernel);
// the fp modes round every intermediate to the dtype MLX's op graph computes it in.
#include "mlx-quant.h"

#include "mlx-quant-impl.h"

#include "ggq-error.h"
#include "ggq-fp16.h"
#include "ggq-parallel.h"
#include "ggq-simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace ggq {

namespace {

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
        static_cast<uint16_t *>(p)[i] = mq_bf16_bits(x);
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

}  // namespace

void mlx_pack_codes(const uint8_t * q, int count, int bits, uint8_t * dst) {
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

namespace {

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

template <src_dtype T>
void affine_row(mlx_affine_row_fn kernel, const float * x, int64_t n, int bits, int gs, uint8_t * wrow, void * srow,
                void * brow, float * sbuf, float * bbuf) {
    kernel(x, n, bits, gs, wrow, sbuf, bbuf);
    for (int64_t g = 0; g < n / gs; ++g) {
        store<T>(srow, g, sbuf[g]);
        store<T>(brow, g, bbuf[g]);
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
            const float v = rnd<T>(rnd<T>((float)q[j] * s) + b);
            if constexpr (T == U) {
                o[j] = v;
            } else {
                o[j] = rnd<U>(v);
            }
        }
    }
}

template <src_dtype U>
void fp_deq_row(const mlx_params & p, const uint8_t * wrow, const uint8_t * srow, int64_t n, float * out) {
    const int gs = p.group_size;
    const bool fp8 = p.mode == mlx_mode::mxfp8;
    const float inv = p.has_global_scale ? p.global_scale / 2688.0f : 1.0f;
    float fp8_values[256];  // E4M3 decoded and rounded to U, as MLX's from_fp8(., U)
    if (fp8) {
        for (int b = 0; b < 256; ++b) fp8_values[b] = rnd<U>(mq_fp8_decode((uint8_t)b));
    }
    uint8_t q[32];
    for (int64_t g = 0; g < n / gs; ++g) {
        unpack_codes(wrow + g * (fp8 ? gs : gs / 2), gs, fp8 ? 8 : 4, q);
        float * o = out + g * gs;
        if (p.mode == mlx_mode::nvfp4) {
            const float s = rnd<U>(mq_fp8_decode(srow[g]));
            if (p.has_global_scale) {
                const float s32 = s * inv;  // float32 from here on, as in MLX
                for (int j = 0; j < gs; ++j) o[j] = k_fp4_values[q[j]] * s32;
            } else {
                for (int j = 0; j < gs; ++j) o[j] = rnd<U>(k_fp4_values[q[j]] * s);
            }
        } else {
            const float s = rnd<U>(std::ldexp(1.0f, (int)srow[g] - 127));
            if (fp8) {
                for (int j = 0; j < gs; ++j) o[j] = rnd<U>(fp8_values[q[j]] * s);
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

void mlx_affine_row_generic(const float * x, int64_t n, int bits, int gs, uint8_t * wrow, float * scales,
                            float * biases) {
    const int64_t gbytes = (int64_t)gs * bits / 8;
    uint8_t q[128];
    for (int64_t g = 0; g < n / gs; ++g) {
        affine_group_codes(x + g * gs, gs, bits, q, scales[g], biases[g]);
        mlx_pack_codes(q, gs, bits, wrow + g * gbytes);
    }
}

void mlx_fp_row_generic(mlx_mode mode, src_dtype dtype, const float * x, int64_t n, bool has_gs, float enc,
                        uint8_t * wrow, uint8_t * srow) {
    with_dtype(dtype, [&]<src_dtype T>() {
        uint8_t q[32];
        if (mode == mlx_mode::nvfp4) {
            for (int64_t g = 0; g < n / 16; ++g) {
                float sd;
                srow[g] = nv_group_scale<T>(group_absmax(x + g * 16, 16), has_gs, enc, sd);
                nv_group_codes<T>(x + g * 16, 16, sd, has_gs, enc, q);
                mlx_pack_codes(q, 16, 4, wrow + g * 8);
            }
            return;
        }
        const bool fp8 = mode == mlx_mode::mxfp8;
        for (int64_t g = 0; g < n / 32; ++g) {
            float p;
            srow[g] = mx_group_scale<T>(group_absmax(x + g * 32, 32), fp8 ? 448.0f : 6.0f, p);
            if (fp8) {
                mx_group_codes<T, true>(x + g * 32, 32, p, wrow + g * 32);
            } else {
                mx_group_codes<T, false>(x + g * 32, 32, p, q);
                mlx_pack_codes(q, 32, 4, wrow + g * 16);
            }
        }
    });
}

uint8_t mlx_fp8_e4m3_encode(float x) { return mq_fp8_encode(x); }

float mlx_fp8_e4m3_decode(uint8_t b) { return mq_fp8_decode(b); }

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
    mlx_affine_row_fn kernel = mlx_affine_row_generic;
    mlx_fp_row_fn fp_kernel = mlx_fp_row_generic;
#if defined(GGQUANT_X86_SIMD)
    if (simd_active_level() >= GGQ_SIMD_AVX512) {
        kernel = mlx_simd<16>::affine_row;
        fp_kernel = mlx_simd<16>::fp_row;
    } else if (simd_active_level() >= GGQ_SIMD_AVX2) {
        kernel = mlx_simd<8>::affine_row;
        fp_kernel = mlx_simd<8>::fp_row;
    }
#endif
    parallel_for(ntasks, resolve_threads(nthreads), [&](int64_t t) {
        std::vector<float> buf(dtype == src_dtype::f32 ? 0 : (size_t)n);
        std::vector<float> sbuf((size_t)ngroups), bbuf((size_t)ngroups);
        const int64_t r0 = t * rpt;
        const int64_t r1 = std::min(nrows, r0 + rpt);
        for (int64_t r = r0; r < r1; ++r) {
            const void * row = static_cast<const char *>(src) + (size_t)r * n * in_item;
            const float * x = static_cast<const float *>(row);
            if (dtype != src_dtype::f32) {
                widen_row(row, dtype, n, buf.data());
                x = buf.data();
            }
            if (!allow_nonfinite && !all_finite(x, n)) {
                for (int64_t j = 0; j < n; ++j) {
                    if (!std::isfinite(x[j])) {
                        fail(error_kind::nonfinite, "mlx_quantize",
                             "NaN or Inf at row " + std::to_string(r) + ", column " + std::to_string(j));
                    }
                }
            }
            auto * wrow = reinterpret_cast<uint8_t *>(w + r * nwords);
            void * srow = static_cast<char *>(scales) + (size_t)(r * ngroups) * sc_item;
            void * brow = biases ? static_cast<char *>(biases) + (size_t)(r * ngroups) * sc_item : nullptr;
            if (p.mode == mlx_mode::affine) {
                with_dtype(dtype, [&]<src_dtype T>() {
                    affine_row<T>(kernel, x, n, p.bits, p.group_size, wrow, srow, brow, sbuf.data(), bbuf.data());
                });
            } else {
                fp_kernel(p.mode, dtype, x, n, p.has_global_scale, enc, wrow, static_cast<uint8_t *>(srow));
            }
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
