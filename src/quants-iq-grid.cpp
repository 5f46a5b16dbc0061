// ===== IQ2 / IQ3 / IQ1 quantization: weighted searches over lattice grids.
// Each follows ggml's quantize_row_<t>_impl operation by operation: float arithmetic in the same
// order, ties resolved the same way, the same candidate scales and fudge factors, and the same
// quirks (IQ3_S does not advance its index and sign cursors past an all-zero block; IQ3_XXS flips
// only four sign groups). This file is built with -ffp-contract=off, as ggml's baseline build.
//
// The tables ggml builds in ggml_quantize_init (the grid as odd levels 2l+1, a map from a point's
// key to its grid index, and for every point off the grid the list of nearest grid points) are
// derived here from the format's grids in iq-grids.cpp, once, on first use.
#include "quants-iq-grid.h"
#include "quants-iq-grid-simd.h"
#include "quants-iq1.h"

#include "ggq-common.h"
#include "ggq-fp16.h"
#include "iq-grids.h"
#include "quants-k-search.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

namespace ggq {

namespace {

using ggq::nearest_int;

inline float fmax_c(float a, float b) { return a > b ? a : b; }  // ggml's MAX(a, b) for floats
inline int clamp_int(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// ===== lattice tables

struct lattice {
    // One off-grid key's candidates: grid indices ordered by (distance, index), and their
    // coordinates transposed (coordinate-major, padded to a multiple of 8) so that distances to all
    // candidates are computed lane-parallel, each in ggml's order.
    struct neighbours {
        uint32_t start;  // into index
        uint32_t count;
        uint32_t stride;  // count rounded up to 8
        uint32_t qoff;    // into q (dim * stride floats)
    };
    int dim = 0;                   // coordinates per grid point: 8 (IQ2, IQ1) or 4 (IQ3)
    int bits = 0;                  // key bits per coordinate: 2 or 3
    std::vector<int8_t> points;    // 2l+1 per coordinate of each grid point (l: level index)
    std::vector<int32_t> map;      // key -> grid index, or -(1 + n) for the n-th neighbour list
    std::vector<neighbours> lists;
    std::vector<uint16_t> index;
    std::vector<float> q;          // 2l+1 of the candidates, transposed
    uint32_t max_count = 0;

    const int8_t * point(int i) const { return points.data() + (size_t)dim * (size_t)i; }
    const neighbours & list(int32_t m) const { return lists[(size_t)(-(int64_t)m - 1)]; }
};

// Builds the tables of a grid whose entries pack `dim` byte values, each one of `levels` (the
// level index is the position in that list). Keys with a coordinate beyond the last level are
// never looked up and keep no list. A point off the grid lists every grid point at one of the
// `nwant` smallest squared distances, ordered by distance then index (as ggml's qsort does).
template <typename Entry>
lattice build_lattice(const Entry * grid, int ngrid, int dim, int bits, const uint8_t * levels, int nlevels, int nwant) {
    lattice g;
    g.dim = dim;
    g.bits = bits;
    g.points.resize((size_t)ngrid * dim);
    g.map.assign((size_t)1 << (bits * dim), std::numeric_limits<int32_t>::min());
    for (int i = 0; i < ngrid; ++i) {
        uint32_t key = 0;
        for (int k = 0; k < dim; ++k) {
            const uint8_t b = (uint8_t)(grid[i] >> (8 * k));
            const int l = (int)(std::find(levels, levels + nlevels, b) - levels);
            if (l == nlevels) {
                throw std::logic_error("[build_lattice] grid value outside the level list");
            }
            g.points[(size_t)dim * i + k] = (int8_t)(2 * l + 1);
            key |= (uint32_t)l << (bits * k);
        }
        g.map[key] = i;
    }
    const int max_d2 = 4 * dim * (nlevels - 1) * (nlevels - 1);
    std::vector<int> d2(ngrid);
    std::vector<int> count(max_d2 + 1);
    int pos[8];
    for (uint32_t key = 0; key < g.map.size(); ++key) {
        bool valid = g.map[key] < 0;
        for (int k = 0; k < dim && valid; ++k) {
            const int l = (int)((key >> (bits * k)) & ((1u << bits) - 1));
            valid = l < nlevels;
            pos[k] = 2 * l + 1;
        }
        if (!valid) {
            continue;
        }
        std::fill(count.begin(), count.end(), 0);
        for (int j = 0; j < ngrid; ++j) {
            const int8_t * pg = g.point(j);
            int d = 0;
            for (int k = 0; k < dim; ++k) d += (pg[k] - pos[k]) * (pg[k] - pos[k]);
            d2[j] = d;
            ++count[d];
        }
        lattice::neighbours nb{(uint32_t)g.index.size(), 0, 0, (uint32_t)g.q.size()};
        int nhave = 0;
        for (int d = 0; d <= max_d2 && nhave < nwant; ++d) {
            if (count[d] == 0) continue;
            ++nhave;
            for (int j = 0; j < ngrid; ++j) {
                if (d2[j] == d) g.index.push_back((uint16_t)j);
            }
        }
        nb.count = (uint32_t)(g.index.size() - nb.start);
        nb.stride = (nb.count + 7) / 8 * 8;
        g.max_count = std::max(g.max_count, nb.stride);
        g.q.resize(g.q.size() + (size_t)dim * nb.stride, 0.0f);
        for (int k = 0; k < dim; ++k) {
            for (uint32_t j = 0; j < nb.count; ++j) {
                g.q[nb.qoff + k * nb.stride + j] = g.point(g.index[nb.start + j])[k];
            }
        }
        g.map[key] = -(int32_t)(g.lists.size() + 1);
        g.lists.push_back(nb);
    }
    return g;
}

constexpr uint8_t k_levels_iq2[3] = {0x08, 0x19, 0x2b};
constexpr uint8_t k_levels_iq1[3] = {0xff, 0x00, 0x01};  // -1, 0, 1
constexpr uint8_t k_levels_iq3xxs[8] = {0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e};
constexpr uint8_t k_levels_iq3s[8] = {0x01, 0x03, 0x05, 0x07, 0x09, 0x0b, 0x0d, 0x0f};

// One lattice per grid: a function-local static, built on first use (thread-safe).
template <const auto & Grid, int Dim, int Bits, const auto & Levels, int Nwant>
const lattice & cached_lattice() {
    static const lattice g = build_lattice(Grid, (int)std::size(Grid), Dim, Bits, Levels, (int)std::size(Levels), Nwant);
    return g;
}

const lattice & lattice_iq2xxs() { return cached_lattice<iq2xxs_grid, 8, 2, k_levels_iq2, 2>(); }
const lattice & lattice_iq2xs() { return cached_lattice<iq2xs_grid, 8, 2, k_levels_iq2, 2>(); }
const lattice & lattice_iq2s() { return cached_lattice<iq2s_grid, 8, 2, k_levels_iq2, 1>(); }
const lattice & lattice_iq1() { return cached_lattice<iq1s_grid, 8, 2, k_levels_iq1, 3>(); }
const lattice & lattice_iq3xxs() { return cached_lattice<iq3xxs_grid, 4, 3, k_levels_iq3xxs, 2>(); }
const lattice & lattice_iq3s() { return cached_lattice<iq3s_grid, 4, 3, k_levels_iq3s, 3>(); }

template <int D>
inline uint32_t key_of(const int8_t * L, int bits) {
    uint32_t key = 0;
    for (int i = 0; i < D; ++i) key |= (uint32_t)L[i] << (bits * i);
    return key;
}

// ===== IQ2 / IQ3: scale search with projection onto the grid

// Weighted squared distances sum_i w[i] * (scale*q[i][j] - x[i])^2 of the n candidates of a
// list (q transposed), each summed over i in order as ggml does; the loop over j vectorises.
template <int D, uint32_t S>
inline void candidate_distances_fixed(const float * q, const float * x, const float * w, float scale, float * d2) {
    float acc[S] = {};
    for (int i = 0; i < D; ++i) {
        const float xi = x[i], wi = w[i];
        for (uint32_t j = 0; j < S; ++j) {
            const float diff = scale * q[i * S + j] - xi;
            acc[j] += wi * diff * diff;
        }
    }
    std::memcpy(d2, acc, sizeof acc);
}

template <int D>
inline void candidate_distances(const float * q, uint32_t stride, const float * x, const float * w, float scale, float * d2) {
    if (stride == 8) return candidate_distances_fixed<D, 8>(q, x, w, scale, d2);  // most IQ3 and IQ2_S lists
    if (stride == 16) return candidate_distances_fixed<D, 16>(q, x, w, scale, d2);
    for (uint32_t j = 0; j < stride; ++j) d2[j] = 0;
    for (int i = 0; i < D; ++i) {
        const float * qi = q + (size_t)i * stride;
        const float xi = x[i], wi = w[i];
        for (uint32_t j = 0; j < stride; ++j) {
            const float diff = scale * qi[j] - xi;
            d2[j] += wi * diff * diff;
        }
    }
}

// The generic nearest_candidate_fn: distances lane-parallel where the compiler vectorises, then the
// first smallest (strictly smaller wins, as ggml's scan from FLT_MAX; 0 where none is below it).
uint32_t nearest_candidate_generic(const float * q, uint32_t stride, uint32_t count, int dim, const float * x, const float * w,
                                   float scale) {
    float d2[2048];
    if (dim == 8) {
        candidate_distances<8>(q, stride, x, w, scale, d2);
    } else {
        candidate_distances<4>(q, stride, x, w, scale, d2);
    }
    float best = FLT_MAX;
    uint32_t arg = 0;
    for (uint32_t j = 0; j < count; ++j) {
        if (d2[j] < best) {
            best = d2[j];
            arg = j;
        }
    }
    return arg;
}

// The generic lane kernels: four lanes per vector (SSE2 on x86, the baseline).
constexpr grid_lanes k_lanes_generic = {nearest_run_dispatch<v4f, v4i>, round_levels_lanes<v4f, v4i>, level_sums_lanes<v4f>, 2};

// The grid point of an off-grid key's list nearest to xval at `scale` (weights w): its levels to L.
template <int D>
void best_neighbour(const lattice & g, int32_t m, const float * xval, const float * w, float scale, int8_t * L,
                    nearest_candidate_fn nearest) {
    const lattice::neighbours & nb = g.list(m);
    const float * q = g.q.data() + nb.qoff;
    const uint32_t best = nearest(q, nb.stride, nb.count, D, xval, w, scale);
    for (int i = 0; i < D; ++i) L[i] = (int8_t)(((int)q[i * nb.stride + best] - 1) / 2);
}

// Levels of one group of D values at inverse scale id, moved to the nearest grid point when the
// rounded point is off the grid. Returns whether it was on the grid.
template <int D>
bool project_group(const lattice & g, int kmaxq, const float * xval, const float * waux, float id, float scale, int8_t * L,
                   nearest_candidate_fn nearest) {
    for (int i = 0; i < D; ++i) {
        const int l = nearest_int(0.5f * (id * xval[i] - 1));
        L[i] = (int8_t)clamp_int(l, 0, kmaxq - 1);
    }
    const int32_t m = g.map[key_of<D>(L, g.bits)];
    if (m >= 0) {
        return true;
    }
    best_neighbour<D>(g, m, xval, waux, scale, L, nearest);
    return false;
}

// The vector parts of one SIMD level, 2^width_log2 lanes: the two searches (one scale with
// candidates across lanes; a run of scales across lanes), and rounding and sums over candidate scales.
struct grid_search {
    nearest_candidate_fn one;
    const grid_lanes * lanes;
};

// Points of group k (D values) at every candidate inverse scale ids[c] (scale 1/ids[c]), as
// 2l+1 per level l, coordinate-major: Qt[D*k + i][c]; og[c][k] whether the rounded point was on the
// grid. ids has ncp >= ncand entries (padding lanes are computed and never read). Consecutive
// candidates that round to the same off-grid key (the levels move monotonically with the scale, so
// equal keys come in runs) search that key's list together, one scale per lane, unless the run is
// so short and the list so long that one search per scale, candidates across lanes, costs less.
// Both give ggml's answer per scale.
template <int D>
void project_group_all(const lattice & g, int kmaxq, const float * xval, const float * waux, const float * ids, const float * scales,
                       int ncand, int ncp, float (*Qt)[32], bool (*og)[8], int k, const grid_search & search) {
    uint32_t keys[32];
    search.lanes->round(ids, ncp, xval, D, kmaxq, g.bits, Qt + D * k, keys);
    const int w = 1 << search.lanes->width_log2;
    for (int c0 = 0; c0 < ncand;) {
        int c1 = c0 + 1;
        while (c1 < ncand && keys[c1] == keys[c0]) ++c1;
        const int32_t m = g.map[keys[c0]];
        if (m >= 0) {
            for (int c = c0; c < c1; ++c) og[c][k] = true;
            c0 = c1;
            continue;
        }
        const lattice::neighbours & nb = g.list(m);
        const float * q = g.q.data() + nb.qoff;
        const int r = c1 - c0;
        const int cost_run = ((r + w - 1) >> search.lanes->width_log2) * (int)nb.count * (5 * D + 3);
        const int cost_one = r * (((int)nb.stride + w - 1) >> search.lanes->width_log2) * 5 * D + 40 * r;
        uint32_t best[32];
        if (cost_run <= cost_one) {
            search.lanes->run(q, nb.stride, nb.count, D, xval, waux, scales + c0, r, best);
        } else {
            for (int c = c0; c < c1; ++c) best[c - c0] = search.one(q, nb.stride, nb.count, D, xval, waux, scales[c]);
        }
        for (int c = c0; c < c1; ++c) {  // the winner's coordinates from the list just scanned
            for (int i = 0; i < D; ++i) Qt[D * k + i][c] = q[i * nb.stride + best[c - c0]];
            og[c][k] = false;
        }
        c0 = c1;
    }
}

struct search_opts {
    int n;               // values per block with one scale: 16 or 32
    int kmaxq;           // levels per coordinate: 3 (IQ2) or 8 (IQ3)
    int nis;             // candidate inverse scales (2*kmaxq - 1 + is*step) / max, is = -nis..nis
    float step;
    float eps;           // a block whose max is below eps is all zero; 0: only when max == 0
    bool parity;         // an even number of minus signs per 8 values (7 sign bits stored)
    bool qp_start;       // IQ2_XXS: make_qp_quants gives the first scale, candidates are relative to it
    bool init_on_grid;   // the on-grid flags before any candidate is taken
    bool track_on_grid;  // false: the flags stay as initialised
    bool refine_all;     // the final pass re-projects every group, not only those off the grid
};

// Signs of one group of 8 and the magnitudes; with parity, the value with the smallest
// weight*x^2 keeps the wrong sign so that the number of minus signs is even.
inline uint8_t split_signs(const float * xb, const float * weight, float * xval, bool parity) {
    int nflip = 0;
    uint8_t s = 0;
    for (int i = 0; i < 8; ++i) {
        if (xb[i] >= 0) {
            xval[i] = xb[i];
        } else {
            xval[i] = -xb[i];
            ++nflip;
            s |= (uint8_t)(1 << i);
        }
    }
    if (!parity) {
        return s;
    }
    if (nflip % 2) {
        int imin = 0;
        float min = weight[imin] * xb[imin] * xb[imin];
        for (int i = 1; i < 8; ++i) {
            const float ax = weight[i] * xb[i] * xb[i];
            if (ax < min) {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= (uint8_t)(1 << imin);
    }
    return s & 127;
}

// sum w*x*q and sum w*q*q for q = 2L+1, in order.
inline void level_sums(const float * weight, const float * xval, const int8_t * L, int n, float & sumqx, float & sumq2) {
    sumqx = 0;
    sumq2 = 0;
    for (int i = 0; i < n; ++i) {
        const float w = weight[i];
        const float q = 2 * L[i] + 1;
        sumqx += w * xval[i] * q;
        sumq2 += w * q * q;
    }
}

// One block of o.n values: fills L (levels of grid points), the sign bytes (one per 8 values)
// and the scale (>= 0). Returns false for an all-zero block (nothing to store).
template <int D>
bool search_block(const lattice & g, const search_opts & o, const float * xb, const float * weight, float & scale_out,
                  int8_t * L, uint8_t * signs, const grid_search & search) {
    float xval[32], waux[32];
    bool on_grid[8];
    const int n = o.n;
    const int ngroups = n / D;
    for (int i = 0; i < n; ++i) waux[i] = std::sqrt(weight[i]);
    for (int k = 0; k < n / 8; ++k) signs[k] = split_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, o.parity);
    float max = xval[0];
    for (int i = 1; i < n; ++i) max = fmax_c(max, xval[i]);
    std::memset(L, 0, (size_t)n);
    if (o.eps > 0 ? max < o.eps : !max) {
        return false;
    }
    float scale, base;
    if (o.qp_start) {
        scale = kq::make_qp_quants(n, o.kmaxq + 1, xval, reinterpret_cast<uint8_t *>(L), weight);
        const float eff_max = scale * o.kmaxq;
        if (eff_max <= 0) {
            std::memset(L, 0, (size_t)n);
            return false;
        }
        base = eff_max;
    } else {
        scale = max / (2 * o.kmaxq - 1);
        base = max;
    }
    // Every candidate scale first, then ggml's sequential choice among them: the sums run
    // lane-parallel over candidates (each still summed over i in ggml's order).
    constexpr int k_max_cand = 32;
    const int ncand = 2 * o.nis + 1;
    const int lanes = 1 << search.lanes->width_log2;
    const int ncp = (ncand + lanes - 1) & ~(lanes - 1);  // padded to whole vectors
    float ids[k_max_cand], scales[k_max_cand];
    for (int c = 0; c < ncp; ++c) {
        ids[c] = (2 * o.kmaxq - 1 + (std::min(c, ncand - 1) - o.nis) * o.step) / base;
        scales[c] = 1 / ids[c];
    }
    float Qt[32][k_max_cand];  // 2l+1 of value i at candidate c
    bool og[k_max_cand][8];
    for (int k = 0; k < ngroups; ++k) {
        project_group_all<D>(g, o.kmaxq, xval + D * k, waux + D * k, ids, scales, ncand, ncp, Qt, og, k, search);
    }
    float sqx[k_max_cand], sq2[k_max_cand];
    search.lanes->sums(Qt, n, ncp, weight, xval, sqx, sq2);
    float best = 0;
    int chosen = -1;
    for (int c = 0; c < ncand; ++c) {
        if (sq2[c] > 0 && sqx[c] * sqx[c] > best * sq2[c]) {
            scale = sqx[c] / sq2[c];
            best = scale * sqx[c];
            chosen = c;
        }
    }
    for (int k = 0; k < ngroups; ++k) on_grid[k] = o.init_on_grid;
    if (chosen >= 0) {
        for (int i = 0; i < n; ++i) L[i] = (int8_t)(((int)Qt[i][chosen] - 1) / 2);
        if (o.track_on_grid) std::copy(og[chosen], og[chosen] + ngroups, on_grid);
    }
    const bool any_off = std::find(on_grid, on_grid + ngroups, false) != on_grid + ngroups;
    if (any_off && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < ngroups; ++k) {
            if (!o.refine_all && on_grid[k]) continue;
            project_group<D>(g, o.kmaxq, xval + D * k, waux + D * k, id, scale, L + D * k, search.one);
        }
        float sumqx, sumq2;
        level_sums(weight, xval, L, n, sumqx, sumq2);
        if (sumq2 > 0) scale = sumqx / sumq2;
    }
    if (scale < 0) {  // cannot happen with non-negative magnitudes; ggml flips the signs then
        scale = -scale;
        for (int k = 0; k < n / 8; ++k) signs[k] = o.parity ? (uint8_t)(~signs[k] & 127) : (uint8_t)~signs[k];
    }
    scale_out = scale;
    return true;
}

// Grid index of the point whose levels are L (always on the grid after search_block).
template <int D>
inline int grid_index_of(const lattice & g, const int8_t * L) {
    return g.map[key_of<D>(L, g.bits)];
}

float sum_squares(const float * x, int n) {
    float s = 0;
    for (int i = 0; i < n; ++i) s += x[i] * x[i];
    return s;
}

// Importance weights of n values: qw * sqrt(sigma2 + x^2); without qw, x^2 (or, for IQ2_S,
// sigma2/4 + x^2).
inline void make_weights(const float * xb, const float * qw, float sigma2, float * weight, int n, bool quarter_sigma) {
    if (qw) {
        for (int i = 0; i < n; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
    } else if (quarter_sigma) {
        for (int i = 0; i < n; ++i) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
    } else {
        for (int i = 0; i < n; ++i) weight[i] = xb[i] * xb[i];
    }
}

// Super-block scale index: nearest_int(0.5 * (id*s - 1)) clamped to [0, hi].
inline int scale_code(float id, float s, int hi) { return clamp_int(nearest_int(0.5f * (id * s - 1)), 0, hi); }

// The sub-block loop of the IQ2 / IQ3 row quantizers (N values a sub-block, grid points of D):
// weights, grid search, then pack(ib, L, signs) for each sub-block the search keeps. Fills scales
// (0 for a sub-block it drops) and returns the largest (0: the super-block stores nothing).
template <int D, int N, class Pack>
float search_sub_blocks(const lattice & g, const search_opts & opts, const float * x, const float * qw, float sigma2,
                        bool quarter_sigma, const grid_search & search, float * scales, Pack && pack) {
    float weight[N];
    int8_t L[N];
    uint8_t signs[N / 8];
    float max_scale = 0;
    for (int ib = 0; ib < QK_K / N; ++ib) {
        const float * xb = x + N * ib;
        make_weights(xb, qw ? qw + N * ib : nullptr, sigma2, weight, N, quarter_sigma);
        float scale;
        if (!search_block<D>(g, opts, xb, weight, scale, L, signs, search)) {
            scales[ib] = 0;
            continue;
        }
        pack(ib, L, signs);
        scales[ib] = scale;
        max_scale = fmax_c(max_scale, scale);
    }
    return max_scale;
}

constexpr search_opts k_opts_iq2xxs = {32, 3, 6, 0.1f, kq::GROUP_MAX_EPS, true, true, false, false, true};
constexpr search_opts k_opts_iq2xs = {16, 3, 9, 0.1f, kq::GROUP_MAX_EPS, true, false, true, true, false};
constexpr search_opts k_opts_iq2s = {16, 3, 9, 0.1f, 1e-8f, false, false, true, true, false};
constexpr search_opts k_opts_iq3xxs = {32, 8, 15, 0.2f, 1e-8f, true, false, true, true, false};
constexpr search_opts k_opts_iq3s = {32, 8, 9, 0.2f, 0.0f, false, false, false, true, true};

void quantize_row_iq2_xxs(const float * x, block_iq2_xxs * y, int64_t nbl, const float * qw, const grid_search & search) {
    const lattice & g = lattice_iq2xxs();
    float scales[QK_K / 32];
    for (int64_t ibl = 0; ibl < nbl; ++ibl, x += QK_K, qw += QK_K) {
        uint32_t q2[QK_K / 16] = {};
        y[ibl].d = fp32_to_fp16(0.f);
        const float sigma2 = sum_squares(x, QK_K) / QK_K;
        const float max_scale = search_sub_blocks<8, 32>(g, k_opts_iq2xxs, x, qw, sigma2, false, search, scales,
                                                         [&](int ib, const int8_t * L, const uint8_t * signs) {
            for (int k = 0; k < 4; ++k) {
                q2[2 * ib + 0] |= (uint32_t)grid_index_of<8>(g, L + 8 * k) << 8 * k;
                q2[2 * ib + 1] |= (uint32_t)signs[k] << 7 * k;
            }
        });
        if (!max_scale) {
            std::memset(y[ibl].qs, 0, sizeof y[ibl].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = fp32_to_fp16(d);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 32; ++ib) q2[2 * ib + 1] |= (uint32_t)scale_code(id, scales[ib], 15) << 28;
        std::memcpy(y[ibl].qs, q2, sizeof q2);
    }
}

void quantize_row_iq2_xs(const float * x, block_iq2_xs * y, int64_t nbl, const float * qw, const grid_search & search) {
    const lattice & g = lattice_iq2xs();
    float scales[QK_K / 16];
    for (int64_t ibl = 0; ibl < nbl; ++ibl, x += QK_K, qw += QK_K) {
        uint16_t q2[QK_K / 8] = {};
        y[ibl].d = fp32_to_fp16(0.f);
        std::memset(y[ibl].scales, 0, sizeof y[ibl].scales);
        const float sigma2 = sum_squares(x, QK_K) / QK_K;
        const float max_scale = search_sub_blocks<8, 16>(g, k_opts_iq2xs, x, qw, sigma2, false, search, scales,
                                                         [&](int ib, const int8_t * L, const uint8_t * signs) {
            for (int k = 0; k < 2; ++k) q2[2 * ib + k] = (uint16_t)(grid_index_of<8>(g, L + 8 * k) | (signs[k] << 9));
        });
        if (!max_scale) {
            std::memset(y[ibl].qs, 0, sizeof y[ibl].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = fp32_to_fp16(d);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const int l = scale_code(id, scales[ib], 15);
            y[ibl].scales[ib / 2] = ib % 2 == 0 ? (uint8_t)l : (uint8_t)(y[ibl].scales[ib / 2] | (l << 4));
        }
        std::memcpy(y[ibl].qs, q2, sizeof q2);
    }
}

void quantize_row_iq2_s(const float * x, block_iq2_s * y, int64_t nbl, const float * qw, const grid_search & search) {
    const lattice & g = lattice_iq2s();
    float scales[QK_K / 16];
    for (int64_t ibl = 0; ibl < nbl; ++ibl, x += QK_K) {
        std::memset(&y[ibl], 0, sizeof(block_iq2_s));
        const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
        const float max_scale = search_sub_blocks<8, 16>(g, k_opts_iq2s, x, qw ? qw + QK_K * ibl : nullptr, sigma2, true, search,
                                                         scales, [&](int ib, const int8_t * L, const uint8_t * signs) {
            for (int k = 0; k < 2; ++k) {
                const int gi = grid_index_of<8>(g, L + 8 * k);
                const int i8 = 2 * ib + k;
                y[ibl].qs[i8] = (uint8_t)(gi & 255);
                y[ibl].qh[i8 / 4] |= (uint8_t)((gi >> 8) << 2 * (i8 % 4));
                y[ibl].qs[QK_K / 8 + i8] = signs[k];
            }
        });
        if (!max_scale) {
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = fp32_to_fp16(d * 0.9875f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const int l = scale_code(id, scales[ib], 15);
            y[ibl].scales[ib / 2] = ib % 2 == 0 ? (uint8_t)l : (uint8_t)(y[ibl].scales[ib / 2] | (l << 4));
        }
    }
}

void quantize_row_iq3_xxs(const float * x, block_iq3_xxs * y, int64_t nbl, const float * qw, const grid_search & search) {
    const lattice & g = lattice_iq3xxs();
    float scales[QK_K / 32];
    for (int64_t ibl = 0; ibl < nbl; ++ibl, x += QK_K) {
        uint8_t q3[QK_K / 4] = {};
        uint32_t scales_and_signs[QK_K / 32] = {};
        y[ibl].d = fp32_to_fp16(0.f);
        const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
        const float max_scale = search_sub_blocks<4, 32>(g, k_opts_iq3xxs, x, qw ? qw + QK_K * ibl : nullptr, sigma2, false,
                                                         search, scales, [&](int ib, const int8_t * L, const uint8_t * signs) {
            for (int k = 0; k < 8; ++k) q3[8 * ib + k] = (uint8_t)grid_index_of<4>(g, L + 4 * k);
            scales_and_signs[ib] = signs[0] | (signs[1] << 7) | (signs[2] << 14) | (signs[3] << 21);
        });
        if (!max_scale) {
            std::memset(y[ibl].qs, 0, sizeof y[ibl].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = fp32_to_fp16(d * 1.0125f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 32; ++ib) scales_and_signs[ib] |= (uint32_t)scale_code(id, scales[ib], 15) << 28;
        std::memcpy(y[ibl].qs, q3, sizeof q3);
        std::memcpy(y[ibl].qs + QK_K / 4, scales_and_signs, sizeof scales_and_signs);
    }
}

void quantize_row_iq3_s(const float * x, block_iq3_s * y, int64_t nbl, const float * qw, const grid_search & search) {
    const lattice & g = lattice_iq3s();
    float scales[QK_K / 32];
    for (int64_t ibl = 0; ibl < nbl; ++ibl, x += QK_K) {
        std::memset(&y[ibl], 0, sizeof(block_iq3_s));
        uint8_t * qs = y[ibl].qs;
        uint8_t * sg = y[ibl].signs;
        const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
        // as in ggml, the qs and signs cursors stay put over a dropped sub-block
        const float max_scale = search_sub_blocks<4, 32>(g, k_opts_iq3s, x, qw ? qw + QK_K * ibl : nullptr, sigma2, false,
                                                         search, scales, [&](int ib, const int8_t * L, const uint8_t * signs) {
            for (int k = 0; k < 8; ++k) {
                const int gi = grid_index_of<4>(g, L + 4 * k);
                qs[k] = (uint8_t)(gi & 255);
                y[ibl].qh[ib] |= (uint8_t)((gi >> 8) << k);
            }
            qs += 8;
            std::memcpy(sg, signs, 4);
            sg += 4;
        });
        if (!max_scale) {
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = fp32_to_fp16(d * 1.033f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 32; ib += 2) {
            y[ibl].scales[ib / 2] = (uint8_t)(scale_code(id, scales[ib], 15) | (scale_code(id, scales[ib + 1], 15) << 4));
        }
    }
}

// ===== IQ1_S / IQ1_M: exact split of sorted values into levels -1, 0, 1 (shifted by +-delta)

// Block positions sorted by value, equal values in position order: the one stable order, which
// glibc's qsort (a merge sort for arrays this small) also gives. For 32 values each position goes
// to its rank (the values below it, and the equal ones before it): no branch to mispredict, and
// the inner loop vectorises. For 16 values (and for a block with a NaN, which has no rank) an
// insertion sort costs less.
template <int N>
void sort_positions(const float * xb, int * idx) {
    bool nan = false;
    for (int j = 0; j < N; ++j) nan |= xb[j] != xb[j];
    if (N < 32 || nan) {
        for (int j = 0; j < N; ++j) {
            int k = j;
            for (; k > 0 && xb[j] < xb[idx[k - 1]]; --k) idx[k] = idx[k - 1];
            idx[k] = j;
        }
        return;
    }
    for (int j = 0; j < N; ++j) {
        const float v = xb[j];
        int rank = 0;
        for (int k = 0; k < N; ++k) rank += (int)(xb[k] < v) | ((int)(xb[k] == v) & (int)(k < j));
        idx[rank] = j;
    }
}

// The IQ1 grid's neighbour lists as levels 0..2 (iq1_candidates), per list of lattice_iq1().
struct iq1_neighbour_table {
    std::vector<uint8_t> levels;
    std::vector<uint32_t> offset, stride;

    iq1_candidates of(const lattice & g, int32_t m) const {
        const size_t n = (size_t)(-(int64_t)m - 1);
        return {levels.data() + offset[n], stride[n], g.lists[n].count};
    }
};

const iq1_neighbour_table & iq1_neighbours() {
    static const iq1_neighbour_table t = [] {
        const lattice & g = lattice_iq1();
        iq1_neighbour_table r;
        for (const lattice::neighbours & nb : g.lists) {
            if (nb.count > iq1_max_candidates) {
                throw std::logic_error("[iq1_neighbours] a neighbour list longer than iq1_max_candidates");
            }
            const uint32_t stride = (nb.count + 15) / 16 * 16;
            r.offset.push_back((uint32_t)r.levels.size());
            r.stride.push_back(stride);
            r.levels.resize(r.levels.size() + 8 * (size_t)stride, 0);
            uint8_t * lv = r.levels.data() + r.offset.back();
            for (uint32_t j = 0; j < nb.count; ++j) {
                const int8_t * pg = g.point(g.index[nb.start + j]);
                for (int i = 0; i < 8; ++i) lv[i * stride + j] = (uint8_t)((pg[i] - 1) / 2);
            }
        }
        return r;
    }();
    return t;
}

// The portable kernels (the vector ones are iq1_simd<W>, quants-iq1-lanes.h).

// Whether any of the splits of one i1 (m per pattern, patterns `stride` apart) passes ggml's test
// sumq2 > 0 && sumqx^2 > best*sumq2 at the current best. When none does, the scan would change
// nothing (the best only changes when a split passes), so it is skipped.
inline bool any_may_win(const float * qx, const float * q2, int stride, int m, int npattern, float best) {
    int pass = 0;
    for (int s = 0; s < npattern; ++s) {
        for (int t = 0; t < m; ++t) {
            const float a = qx[s * stride + t], b = q2[s * stride + t];
            pass |= (int)(b > 0) & (int)(a * a > best * b);
        }
    }
    return pass != 0;
}

// ggml's scan over the m splits (i2 = i1 + t) of one i1, K shift choices each (lists `stride`
// apart), skipped when no split can pass.
template <int K>
void scan_row(const float * qx, const float * q2, int stride, int m, int i1, float & best, float & scale, iq1_split & split) {
    if (!any_may_win(qx, q2, stride, m, K, best)) return;
    for (int t = 0; t < m; ++t) {
        for (int k = 0; k < K; ++k) {
            if (iq1_take(qx[k * stride + t], q2[k * stride + t], best, scale)) {
                split.i1 = i1;
                split.i2 = i1 + t;
                split.k = k;
            }
        }
    }
}

// per i1: the sums of every split (i1, i2) first (lane-parallel over i2, each in ggml's order),
// then ggml's scan over i2 with the +delta split before the -delta one
void best_split_s_generic(const iq1s_sums & sums, iq1_split & split) {
    constexpr int N = 32;
    const float * sumx = sums.x;
    const float * sumw = sums.w;
    float best = -FLT_MAX, scale = split.scale;
    for (int i1 = 0; i1 <= N; ++i1) {
        const int m = N + 1 - i1;
        float qx[2][N + 1], q2[2][N + 1];
        for (int s = 0; s < 2; ++s) {
            const float * xv = s == 0 ? iq1_x_p : iq1_x_m;
            const float ax = (sumx[i1] - sumx[0]) * xv[0], aw = (sumw[i1] - sumw[0]) * xv[0] * xv[0];
            for (int t = 0; t < m; ++t) {
                const int i2 = i1 + t;
                qx[s][t] = ax + (sumx[i2] - sumx[i1]) * xv[1] + (sumx[N] - sumx[i2]) * xv[2];
                q2[s][t] = aw + (sumw[i2] - sumw[i1]) * xv[1] * xv[1] + (sumw[N] - sumw[i2]) * xv[2] * xv[2];
            }
        }
        scan_row<2>(&qx[0][0], &q2[0][0], N + 1, m, i1, best, scale, split);
    }
    split.scale = scale;
}

// As best_split_s_generic, for the four shift patterns of IQ1_M; for a split the sums collapse
// to T*v[2] - px[i1] - px[i2] because v[0]-v[1] = v[1]-v[2] = -1 (ggml's form).
void best_split_m_generic(const iq1m_sums & sums, iq1_split & split) {
    constexpr int N = 16;
    const float (*px)[32] = sums.x;
    const float (*pw)[32] = sums.w;
    const float p2 = iq1_x_p[2], m2 = iq1_x_m[2];
    const float cp1 = iq1_x_p[0] * iq1_x_p[0] - iq1_x_p[1] * iq1_x_p[1];
    const float cp2 = iq1_x_p[1] * iq1_x_p[1] - iq1_x_p[2] * iq1_x_p[2];
    const float cm1 = iq1_x_m[0] * iq1_x_m[0] - iq1_x_m[1] * iq1_x_m[1];
    const float cm2 = iq1_x_m[1] * iq1_x_m[1] - iq1_x_m[2] * iq1_x_m[2];
    const float txs[2] = {px[0][N], px[1][N]};
    const float tws[2] = {pw[0][N], pw[1][N]};
    float best = -FLT_MAX, scale = split.scale;
    for (int i1 = 0; i1 <= N; ++i1) {
        const int m = N + 1 - i1;
        float sumqx[4][N + 1], sumq2[4][N + 1];
        for (int t = 0; t < m; ++t) {
            const int i2 = i1 + t;
            float qx_p[2], qx_m[2], q2_p[2], q2_m[2];
            for (int h = 0; h < 2; ++h) {
                const float sx = px[h][i1] + px[h][i2];
                qx_p[h] = txs[h] * p2 - sx;
                qx_m[h] = txs[h] * m2 - sx;
                q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
            }
            sumqx[0][t] = qx_p[0] + qx_p[1];
            sumqx[1][t] = qx_p[0] + qx_m[1];
            sumqx[2][t] = qx_m[0] + qx_p[1];
            sumqx[3][t] = qx_m[0] + qx_m[1];
            sumq2[0][t] = q2_p[0] + q2_p[1];
            sumq2[1][t] = q2_p[0] + q2_m[1];
            sumq2[2][t] = q2_m[0] + q2_p[1];
            sumq2[3][t] = q2_m[0] + q2_m[1];
        }
        scan_row<4>(&sumqx[0][0], &sumq2[0][0], N + 1, m, i1, best, scale, split);
    }
    split.scale = scale;
}

uint32_t nearest_generic(const iq1_candidates & c, const iq1_terms & t) {
    float best = FLT_MAX;
    uint32_t arg = 0;
    for (uint32_t j = 0; j < c.count; ++j) {
        float d2 = 0;
        for (int i = 0; i < 8; ++i) d2 += t.t[8 * i + c.levels[i * c.stride + j]];
        if (d2 < best) {
            best = d2;
            arg = j;
        }
    }
    return arg;
}

// The IQ1 kernels of one SIMD level.
struct iq1_kernels {
    void (*split_s)(const iq1s_sums &, iq1_split &);
    void (*split_m)(const iq1m_sums &, iq1_split &);
    uint32_t (*nearest)(const iq1_candidates &, const iq1_terms &);
};

// The row quantizers get their SIMD level as the IQ2/IQ3 nearest-candidate search of that level.
const iq1_kernels & iq1_kernels_for(nearest_candidate_fn nearest) {
    static constexpr iq1_kernels generic = {best_split_s_generic, best_split_m_generic, nearest_generic};
#if defined(GGQUANT_X86_SIMD)
    static constexpr iq1_kernels avx2 = {iq1_simd<8>::best_split_s, iq1_simd<8>::best_split_m, iq1_simd<8>::nearest};
    static constexpr iq1_kernels avx512 = {iq1_simd<16>::best_split_s, iq1_simd<16>::best_split_m, iq1_simd<16>::nearest};
    if (nearest == nearest_candidate_avx512) return avx512;
    if (nearest == nearest_candidate_avx2) return avx2;
#endif
    (void)nearest;
    return generic;
}

// Level of each value from the two split points of the sorted order.
template <int N>
void levels_from_split(const int * idx, int i1, int i2, int8_t * L) {
    for (int j = 0; j < i1; ++j) L[idx[j]] = 0;
    for (int j = i1; j < i2; ++j) L[idx[j]] = 1;
    for (int j = i2; j < N; ++j) L[idx[j]] = 2;
}

// Grid indices of the 8-value groups of L, moving off-grid groups to their nearest neighbour at
// `scale` (level values per group from xx_of(k)). Returns whether all were on the grid.
template <int N, typename XX>
bool grid_groups(const lattice & g, const float * xb, const float * weight, float scale, XX xx_of, int8_t * L, uint16_t * index,
                 const iq1_kernels & kern) {
    bool all_on_grid = true;
    iq1_terms terms{};
    for (int k = 0; k < N / 8; ++k) {
        int gi = g.map[key_of<8>(L + 8 * k, 2)];
        if (gi < 0) {
            all_on_grid = false;
            const float * xx = xx_of(k);
            for (int i = 0; i < 8; ++i) {
                for (int l = 0; l < 3; ++l) {  // ggml's term w*diff*diff of level l
                    const float diff = scale * xx[l] - xb[8 * k + i];
                    terms.t[8 * i + l] = weight[8 * k + i] * diff * diff;
                }
            }
            gi = g.index[g.list(gi).start + kern.nearest(iq1_neighbours().of(g, gi), terms)];
            const int8_t * pg = g.point(gi);
            for (int i = 0; i < 8; ++i) L[8 * k + i] = (int8_t)((pg[i] - 1) / 2);
        }
        index[k] = (uint16_t)gi;
    }
    return all_on_grid;
}

// Least-squares scale of the chosen grid points (kept unless both sums are positive).
template <int N, typename XX>
void refit_scale(const lattice & g, const float * xb, const float * weight, XX xx_of, const uint16_t * index, float & scale) {
    float sumqx = 0, sumq2 = 0;
    for (int k = 0; k < N / 8; ++k) {
        const float * xx = xx_of(k);
        const int8_t * pg = g.point(index[k]);
        for (int j = 0; j < 8; ++j) {
            const float w = weight[8 * k + j];
            const float q = xx[(pg[j] - 1) / 2];
            sumqx += w * q * xb[8 * k + j];
            sumq2 += w * q * q;
        }
    }
    if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
}

void quantize_row_iq1_s(const float * x, block_iq1_s * y, int64_t nbl, const float * qw, nearest_candidate_fn nearest) {
    constexpr int N = 32;
    const lattice & g = lattice_iq1();
    const iq1_kernels & kern = iq1_kernels_for(nearest);
    iq1s_sums sums{};  // the padding stays zero
    float scales[QK_K / N], weight[N];
    int8_t L[N];
    int idx[N];
    uint16_t index[N / 8];
    int8_t shifts[QK_K / N];
    for (int64_t ibl = 0; ibl < nbl; ++ibl, x += QK_K, qw += QK_K) {
        y[ibl].d = fp32_to_fp16(0.f);
        std::memset(y[ibl].qs, 0, sizeof y[ibl].qs);
        std::memset(y[ibl].qh, 0, sizeof y[ibl].qh);
        float max_scale = 0;
        const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
        for (int ib = 0; ib < QK_K / N; ++ib) {
            const float * xb = x + N * ib;
            make_weights(xb, qw + N * ib, sigma2, weight, N, false);
            float max = std::fabs(xb[0]);
            for (int i = 1; i < N; ++i) max = fmax_c(max, std::fabs(xb[i]));
            if (max < 1e-12f) {
                scales[ib] = 0;
                shifts[ib] = 1;
                continue;
            }
            sort_positions<N>(xb, idx);
            sums.x[0] = sums.w[0] = 0;
            for (int j = 0; j < N; ++j) {
                const int i = idx[j];
                sums.x[j + 1] = sums.x[j] + weight[i] * xb[i];
                sums.w[j + 1] = sums.w[j] + weight[i];
            }
            iq1_split split;
            split.scale = max;
            kern.split_s(sums, split);
            if (split.i1 < 0) {
                scales[ib] = 0;
                shifts[ib] = 1;
                continue;
            }
            const int besti1 = split.i1, besti2 = split.i2;
            float scale = split.scale;
            int best_shift = split.k == 0 ? 1 : -1;
            levels_from_split<N>(idx, besti1, besti2, L);
            if (scale < 0) {
                for (int j = 0; j < N; ++j) L[j] = (int8_t)(2 - L[j]);
                scale = -scale;
                best_shift = -best_shift;
            }
            const float * xx = best_shift == 1 ? iq1_x_p : iq1_x_m;
            const auto xx_of = [xx](int) { return xx; };
            if (!grid_groups<N>(g, xb, weight, scale, xx_of, L, index, kern)) {
                refit_scale<N>(g, xb, weight, xx_of, index, scale);
            }
            uint16_t h = 0;
            for (int k = 0; k < N / 8; ++k) {
                y[ibl].qs[(N / 8) * ib + k] = (uint8_t)(index[k] & 255);
                h |= (uint16_t)((index[k] >> 8) << 3 * k);
            }
            y[ibl].qh[ib] = h;
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_shift;
            max_scale = fmax_c(max_scale, scale);
        }
        if (!max_scale) {
            continue;
        }
        const float d = max_scale / 15;
        y[ibl].d = fp32_to_fp16(d * 1.125f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / N; ++ib) {
            int l = scale_code(id, scales[ib], 7);
            if (shifts[ib] == -1) l |= 8;
            y[ibl].qh[ib] |= (uint16_t)(l << 12);
        }
    }
}

void quantize_row_iq1_m(const float * x, block_iq1_m * y, int64_t nbl, const float * qw, nearest_candidate_fn nearest) {
    constexpr int N = 16;
    const lattice & g = lattice_iq1();
    const iq1_kernels & kern = iq1_kernels_for(nearest);
    iq1m_sums sums{};  // the padding stays zero
    constexpr uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};
    float scales[QK_K / N], weight[N];
    int8_t L[N];
    int idx[N];
    uint16_t index[N / 8];
    int8_t shifts[QK_K / N];
    // shift pattern k: bit 1 set = first 8 values use x_m, bit 0 set = second 8 use x_m
    const auto xx_for = [](int k, int group) { return (group == 0 ? k < 2 : k % 2 == 0) ? iq1_x_p : iq1_x_m; };
    for (int64_t ibl = 0; ibl < nbl; ++ibl, x += QK_K) {
        std::memset(&y[ibl], 0, sizeof(block_iq1_m));
        const float * qwb = qw ? qw + QK_K * ibl : nullptr;
        float max_scale = 0;
        const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
        for (int ib = 0; ib < QK_K / N; ++ib) {
            const float * xb = x + N * ib;
            make_weights(xb, qwb ? qwb + N * ib : nullptr, sigma2, weight, N, false);
            float max = std::fabs(xb[0]);
            for (int i = 1; i < N; ++i) max = fmax_c(max, std::fabs(xb[i]));
            if (max < 1e-7f) {
                scales[ib] = 0;
                shifts[ib] = 0;
                continue;
            }
            sort_positions<N>(xb, idx);
            // prefix sums per half: each half may use x_p or x_m
            sums.x[0][0] = sums.x[1][0] = 0;
            sums.w[0][0] = sums.w[1][0] = 0;
            for (int j = 0; j < N; ++j) {
                const int i = idx[j];
                const int h = i < N / 2 ? 0 : 1;
                sums.x[h][j + 1] = sums.x[h][j] + weight[i] * xb[i];
                sums.x[1 - h][j + 1] = sums.x[1 - h][j];
                sums.w[h][j + 1] = sums.w[h][j] + weight[i];
                sums.w[1 - h][j + 1] = sums.w[1 - h][j];
            }
            iq1_split split;
            split.scale = max;
            kern.split_m(sums, split);
            if (split.i1 < 0) {
                scales[ib] = 0;
                shifts[ib] = 0;
                continue;
            }
            const int besti1 = split.i1, besti2 = split.i2;
            float scale = split.scale;
            int best_k = split.k;
            levels_from_split<N>(idx, besti1, besti2, L);
            if (scale < 0) {
                for (int j = 0; j < N; ++j) L[j] = (int8_t)(2 - L[j]);
                scale = -scale;
                best_k = 3 - best_k;
            }
            const auto xx_of = [&xx_for, best_k](int group) { return xx_for(best_k, group); };
            if (!grid_groups<N>(g, xb, weight, scale, xx_of, L, index, kern)) {
                refit_scale<N>(g, xb, weight, xx_of, index, scale);
            }
            y[ibl].qs[2 * ib + 0] = (uint8_t)(index[0] & 255);
            y[ibl].qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
            y[ibl].qh[ib] = (uint8_t)((index[0] >> 8) | ((index[1] >> 8) << 4));
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_k;
            max_scale = fmax_c(max_scale, scale);
        }
        if (!max_scale) {
            continue;
        }
        uint16_t sc[4] = {};
        float d = max_scale / 15;
        const float id = 1 / d;
        float sumqx_f = 0, sumq2_f = 0;
        for (int ib = 0; ib < QK_K / N; ++ib) {
            const int l = scale_code(id, scales[ib], 7);
            sc[ib / 4] |= (uint16_t)(l << 3 * (ib % 4));
            y[ibl].qh[ib] |= masks[shifts[ib]];
            const float * xb = x + N * ib;
            make_weights(xb, qwb ? qwb + N * ib : nullptr, sigma2, weight, N, false);
            for (int k = 0; k < N / 8; ++k) {
                const float * xx = xx_for(shifts[ib], k);
                const int8_t * pg = g.point(y[ibl].qs[2 * ib + k] + ((y[ibl].qh[ib] << (8 - 4 * k)) & 0x700));
                for (int j = 0; j < 8; ++j) {
                    const float w = weight[8 * k + j];
                    const float q = xx[(pg[j] - 1) / 2] * (2 * l + 1);
                    sumqx_f += w * q * xb[8 * k + j];
                    sumq2_f += w * q * q;
                }
            }
        }
        if (sumq2_f > 0) d = sumqx_f / sumq2_f;
        const uint16_t s = fp32_to_fp16(d * 1.1125f);
        sc[0] |= (uint16_t)((s & 0x000f) << 12);
        sc[1] |= (uint16_t)((s & 0x00f0) << 8);
        sc[2] |= (uint16_t)((s & 0x0f00) << 4);
        sc[3] |= (uint16_t)(s & 0xf000);
        std::memcpy(y[ibl].scales, sc, sizeof sc);
    }
}

// Rows of n_per_row values, one row at a time (the imatrix applies to every row).
template <typename Block, typename RowFn, typename Search>
size_t quantize_rows_of(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix, RowFn row,
                        const Search & nearest) {
    const int64_t nb = n_per_row / QK_K;
    auto * y = static_cast<Block *>(dst);
    for (int64_t r = 0; r < nrows; ++r) {
        row(src + r * n_per_row, y + r * nb, nb, imatrix, nearest);
    }
    return (size_t)(nrows * nb) * sizeof(Block);
}

}  // namespace

namespace {
constexpr grid_search k_search_generic = {nearest_candidate_generic, &k_lanes_generic};
#if defined(GGQUANT_X86_SIMD)
constexpr grid_search k_search_avx2 = {nearest_candidate_avx2, &grid_lanes_avx2};
constexpr grid_search k_search_avx512 = {nearest_candidate_avx512, &grid_lanes_avx512};
#endif
}  // namespace

// One chunk quantizer per type and SIMD level; they differ only in the nearest-candidate searches
// (IQ2 / IQ3 take both, `member` empty; IQ1 takes the one-scale search, `member` .one).
#define GGQ_IQ_GRID_QUANTIZER(t, suffix, search)                                                                    \
    size_t quantize_##t##suffix(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) { \
        return quantize_rows_of<block_##t>(src, dst, nrows, n_per_row, imatrix, quantize_row_##t, search);           \
    }
#if defined(GGQUANT_X86_SIMD)
#define GGQ_IQ_GRID_QUANTIZERS(t, member)                          \
    GGQ_IQ_GRID_QUANTIZER(t, , k_search_generic member)            \
    GGQ_IQ_GRID_QUANTIZER(t, _avx2, k_search_avx2 member)          \
    GGQ_IQ_GRID_QUANTIZER(t, _avx512, k_search_avx512 member)
#else
#define GGQ_IQ_GRID_QUANTIZERS(t, member) GGQ_IQ_GRID_QUANTIZER(t, , k_search_generic member)
#endif

GGQ_IQ_GRID_QUANTIZERS(iq2_xxs, )
GGQ_IQ_GRID_QUANTIZERS(iq2_xs, )
GGQ_IQ_GRID_QUANTIZERS(iq2_s, )
GGQ_IQ_GRID_QUANTIZERS(iq3_xxs, )
GGQ_IQ_GRID_QUANTIZERS(iq3_s, )
GGQ_IQ_GRID_QUANTIZERS(iq1_s, .one)
GGQ_IQ_GRID_QUANTIZERS(iq1_m, .one)

#undef GGQ_IQ_GRID_QUANTIZERS
#undef GGQ_IQ_GRID_QUANTIZER

void quantize_row_iq2_s_ref(const float * x, void * y, int64_t k) { quantize_iq2_s(x, y, 1, k, nullptr); }
void quantize_row_iq3_xxs_ref(const float * x, void * y, int64_t k) { quantize_iq3_xxs(x, y, 1, k, nullptr); }
void quantize_row_iq3_s_ref(const float * x, void * y, int64_t k) { quantize_iq3_s(x, y, 1, k, nullptr); }

}  // namespace ggq
