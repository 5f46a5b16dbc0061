// ===== IQ formats: scalar reference kernels.
// IQ4_NL / IQ4_XS quantization follows ggml's reference search operation by operation: float (never
// double) arithmetic, the same order of additions, the same candidate scales, ties resolved the same
// way and the fp16 rounding of the scales at the same points. This file is built with
// -ffp-contract=off, so no multiply-add is fused, as in ggml's baseline build.
#include "quants-iq.h"

#include "ggq-fp16.h"
#include "iq-grids.h"
#include "quants-iq-impl.h"

#include <cmath>
#include <cstring>

namespace ggq {

// ===== IQ4_NL / IQ4_XS quantization

namespace iq4 {

// Finds the best scale of one block of 32 (the block's scale with the code indices in L when
// ntry < 0, otherwise after trying 2*ntry+1 candidate scales around the first guess). Returns the
// scale; writes L only on the ntry < 0 path (the callers with ntry > 0 recompute L).
static float block_scale(const float * xb, const float * weight, uint8_t * Lb, int ntry) {
    const int8_t * values = kvalues_iq4nl;
    float amax;
    const float max = max_by_magnitude(xb, 32, amax);
    if (amax < k_group_max_eps) {
        return 0.0f;
    }
    float d = ntry > 0 ? -max / values[0] : max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
        const float al = id * xb[j];
        const int l = best_index_iq4nl(al);
        Lb[j] = (uint8_t)l;
        const float q = values[l];
        const float w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
        id = (itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const float al = id * xb[j];
            const int l = best_index_iq4nl(al);
            const float q = values[l];
            const float w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

// One IQ4_NL block of 32 values. ntry = 7 for the chunk quantizer, -1 for the row reference (which
// keeps the first guess and, for an all-zero block, the previous block's codes, as ggml does).
void quantize_block_nl(const float * x, block_iq4_nl * y, const float * qw, uint8_t * L, int ntry) {
    float weight[32];
    const float sigma2 = qw ? block_sigma2(x, 32) : 0.0f;  // used only by the weighted search
    make_weights(x, qw, sigma2, weight, 32);
    const float scale = block_scale(x, weight, L, ntry);
    y->d = fp32_to_fp16(scale);
    if (ntry > 0) {
        const float id = scale ? 1 / scale : 0;
        for (int j = 0; j < 32; ++j) {
            L[j] = (uint8_t)best_index_iq4nl(id * x[j]);
        }
    }
    pack_nibbles(L, y->qs, 32);
}

// One IQ4_XS super-block of 256 values (8 blocks of 32 with 6-bit scales).
void quantize_block_xs(const float * x, block_iq4_xs * y, const float * qw) {
    float weight[32];
    float scales[8];
    uint8_t L[32];
    const float sigma2 = qw ? block_sigma2(x, QK_K) : 0.0f;
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < 8; ++ib) {
        const float * xb = x + 32 * ib;
        make_weights(xb, qw ? qw + 32 * ib : nullptr, sigma2, weight, 32);
        scales[ib] = block_scale(xb, weight, L, 7);
        const float abs_d = std::fabs(scales[ib]);
        if (abs_d > amax_scale) {
            amax_scale = abs_d;
            max_scale = scales[ib];
        }
    }
    encode_xs(x, y, scales, max_scale, [](const float * xb, float idl, uint8_t * q4) {
        uint8_t Lb[32];
        for (int j = 0; j < 32; ++j) {
            Lb[j] = (uint8_t)best_index_iq4nl(idl * xb[j]);
        }
        pack_nibbles(Lb, q4, 32);
    });
}

}  // namespace iq4

void quantize_row_iq4_nl_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_iq4_nl *>(vy);
    uint8_t L[32] = {};
    for (int64_t i = 0; i < k / QK4_NL; ++i) {
        iq4::quantize_block_nl(x + QK4_NL * i, y + i, nullptr, L, -1);
    }
}

size_t quantize_iq4_nl(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    const int64_t nb = n_per_row / QK4_NL;
    auto * y = static_cast<block_iq4_nl *>(dst);
    uint8_t L[32];
    for (int64_t r = 0; r < nrows; ++r) {
        for (int64_t i = 0; i < nb; ++i) {
            iq4::quantize_block_nl(src + QK4_NL * i, y + i, imatrix ? imatrix + QK4_NL * i : nullptr, L, 7);
        }
        src += n_per_row;
        y += nb;
    }
    return (size_t)(nrows * nb) * sizeof(block_iq4_nl);
}

size_t quantize_iq4_xs(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    const int64_t nb = n_per_row / QK_K;
    auto * y = static_cast<block_iq4_xs *>(dst);
    for (int64_t r = 0; r < nrows; ++r) {
        for (int64_t i = 0; i < nb; ++i) {
            iq4::quantize_block_xs(src + QK_K * i, y + i, imatrix ? imatrix + QK_K * i : nullptr);
        }
        src += n_per_row;
        y += nb;
    }
    return (size_t)(nrows * nb) * sizeof(block_iq4_xs);
}

void quantize_row_iq4_xs_ref(const float * x, void * y, int64_t k) { quantize_iq4_xs(x, y, 1, k, nullptr); }

// ===== IQ4 dequantization: d (and the 6-bit block scale) times the code book value

void dequantize_row_iq4_nl(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_iq4_nl *>(vx);
    for (int64_t i = 0; i < k / QK4_NL; ++i, y += QK4_NL) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK4_NL / 2; ++j) {
            y[j] = d * kvalues_iq4nl[x[i].qs[j] & 0xf];
            y[j + QK4_NL / 2] = d * kvalues_iq4nl[x[i].qs[j] >> 4];
        }
    }
}

void dequantize_row_iq4_xs(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_iq4_xs *>(vx);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t * qs = x[i].qs;
        for (int ib = 0; ib < QK_K / 32; ++ib, y += 32, qs += 16) {
            const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x[i].scales_h >> 2 * ib) & 3) << 4);
            const float dl = d * (ls - 32);
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

// ===== IQ2 / IQ3 / IQ1 dequantization (grid value times block scale times sign)

namespace {

inline uint8_t grid_byte(uint64_t entry, int j) { return (uint8_t)(entry >> (8 * j)); }
inline float sign_of(uint8_t signs, int j) { return (signs >> j) & 1 ? -1.f : 1.f; }

}  // namespace

void dequantize_row_iq2_xxs(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_iq2_xxs *>(vx);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int ib32 = 0; ib32 < QK_K / 32; ++ib32) {
            uint32_t aux[2];
            std::memcpy(aux, x[i].qs + 4 * ib32, sizeof aux);
            const float db = d * (0.5f + (aux[1] >> 28)) * 0.25f;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint64_t g = iq2xxs_grid[(aux[0] >> (8 * l)) & 0xff];
                const uint8_t signs = ksigns_iq2xs[(aux[1] >> 7 * l) & 127];
                for (int j = 0; j < 8; ++j) {
                    y[j] = db * grid_byte(g, j) * sign_of(signs, j);
                }
            }
        }
    }
}

void dequantize_row_iq2_xs(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_iq2_xs *>(vx);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int ib32 = 0; ib32 < QK_K / 32; ++ib32) {
            const float db[2] = {d * (0.5f + (x[i].scales[ib32] & 0xf)) * 0.25f, d * (0.5f + (x[i].scales[ib32] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint16_t q = x[i].qs[4 * ib32 + l];
                const uint64_t g = iq2xs_grid[q & 511];
                const uint8_t signs = ksigns_iq2xs[q >> 9];
                for (int j = 0; j < 8; ++j) {
                    y[j] = db[l / 2] * grid_byte(g, j) * sign_of(signs, j);
                }
            }
        }
    }
}

void dequantize_row_iq2_s(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_iq2_s *>(vx);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t * qs = x[i].qs;
        const uint8_t * signs = x[i].qs + QK_K / 8;
        for (int ib32 = 0; ib32 < QK_K / 32; ++ib32, qs += 4, signs += 4) {
            const float db[2] = {d * (0.5f + (x[i].scales[ib32] & 0xf)) * 0.25f, d * (0.5f + (x[i].scales[ib32] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint64_t g = iq2s_grid[qs[l] | ((x[i].qh[ib32] << (8 - 2 * l)) & 0x300)];
                for (int j = 0; j < 8; ++j) {
                    y[j] = db[l / 2] * grid_byte(g, j) * sign_of(signs[l], j);
                }
            }
        }
    }
}

void dequantize_row_iq3_xxs(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_iq3_xxs *>(vx);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t * qs = x[i].qs;
        const uint8_t * scales_and_signs = x[i].qs + QK_K / 4;
        for (int ib32 = 0; ib32 < QK_K / 32; ++ib32, qs += 8) {
            uint32_t aux;
            std::memcpy(&aux, scales_and_signs + 4 * ib32, sizeof aux);
            const float db = d * (0.5f + (aux >> 28)) * 0.5f;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint8_t signs = ksigns_iq2xs[(aux >> 7 * l) & 127];
                const uint32_t g1 = iq3xxs_grid[qs[2 * l]];
                const uint32_t g2 = iq3xxs_grid[qs[2 * l + 1]];
                for (int j = 0; j < 4; ++j) {
                    y[j] = db * grid_byte(g1, j) * sign_of(signs, j);
                    y[j + 4] = db * grid_byte(g2, j) * sign_of(signs, j + 4);
                }
            }
        }
    }
}

void dequantize_row_iq3_s(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_iq3_s *>(vx);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t * qs = x[i].qs;
        const uint8_t * signs = x[i].signs;
        for (int ib32 = 0; ib32 < QK_K / 32; ++ib32, qs += 8, signs += 4) {
            const int sc = (x[i].scales[ib32 / 2] >> (4 * (ib32 % 2))) & 0xf;
            const float db = d * (1 + 2 * sc);
            const uint8_t qh = x[i].qh[ib32];
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint32_t g1 = iq3s_grid[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)];
                const uint32_t g2 = iq3s_grid[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)];
                for (int j = 0; j < 4; ++j) {
                    y[j] = db * grid_byte(g1, j) * sign_of(signs[l], j);
                    y[j + 4] = db * grid_byte(g2, j) * sign_of(signs[l], j + 4);
                }
            }
        }
    }
}

void dequantize_row_iq1_s(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_iq1_s *>(vx);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t * qs = x[i].qs;
        for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4) {
            const uint16_t qh = x[i].qh[ib];
            const float dl = d * (2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -iq1s_delta : iq1s_delta;
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint64_t g = iq1s_grid[qs[l] | (((qh >> 3 * l) & 7) << 8)];
                for (int j = 0; j < 8; ++j) {
                    y[j] = dl * ((int8_t)grid_byte(g, j) + delta);
                }
            }
        }
    }
}

void dequantize_row_iq1_m(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_iq1_m *>(vx);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        uint16_t sc[4];
        std::memcpy(sc, x[i].scales, sizeof sc);
        const uint16_t dbits = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        const float d = fp16_to_fp32(dbits);
        const uint8_t * qs = x[i].qs;
        const uint8_t * qh = x[i].qh;
        for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4, qh += 2) {
            const float dl[2] = {d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 0x7) + 1),
                                 d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 0x7) + 1)};
            const uint16_t idx[4] = {(uint16_t)(qs[0] | ((qh[0] << 8) & 0x700)), (uint16_t)(qs[1] | ((qh[0] << 4) & 0x700)),
                                     (uint16_t)(qs[2] | ((qh[1] << 8) & 0x700)), (uint16_t)(qs[3] | ((qh[1] << 4) & 0x700))};
            const float delta[4] = {qh[0] & 0x08 ? -iq1s_delta : iq1s_delta, qh[0] & 0x80 ? -iq1s_delta : iq1s_delta,
                                    qh[1] & 0x08 ? -iq1s_delta : iq1s_delta, qh[1] & 0x80 ? -iq1s_delta : iq1s_delta};
            for (int l = 0; l < 4; ++l, y += 8) {
                const uint64_t g = iq1s_grid[idx[l]];
                for (int j = 0; j < 8; ++j) {
                    y[j] = dl[l / 2] * ((int8_t)grid_byte(g, j) + delta[l]);
                }
            }
        }
    }
}

}  // namespace ggq
