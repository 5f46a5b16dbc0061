// Constant tables of the non-linear (IQ) and FP4 formats. They are part of the on-disk formats:
// a grid index or a 4-bit code in a block means exactly these values.
#pragma once

#include <array>
#include <cstdint>

namespace ggq {

// IQ4_NL / IQ4_XS code book (sorted ascending).
inline constexpr int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// E2M1 (FP4) values times two, shared by MXFP4 and NVFP4: code c means kvalues_fp4[c] / 2.
inline constexpr int8_t kvalues_fp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// Sign byte of 8 values from a 7-bit index: bit 7 makes the number of negative signs even.
inline constexpr std::array<uint8_t, 128> ksigns_iq2xs = [] {
    std::array<uint8_t, 128> t{};
    for (int i = 0; i < 128; ++i) {
        t[i] = (uint8_t)(i | ((__builtin_popcount((unsigned)i) & 1) << 7));
    }
    return t;
}();

inline constexpr float iq1s_delta = 0.125f;  // IQ1_S and IQ1_M grid shift

// Lattice grids: 8 (uint64) or 4 (uint32) unsigned byte values per entry, little-endian. The
// IQ1 grid holds signed bytes (-1, 0, 1).
extern const uint64_t iq2xxs_grid[256];
extern const uint64_t iq2xs_grid[512];
extern const uint64_t iq2s_grid[1024];
extern const uint32_t iq3xxs_grid[256];
extern const uint32_t iq3s_grid[512];
extern const uint64_t iq1s_grid[2048];

}  // namespace ggq
