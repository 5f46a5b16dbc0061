// IQ4_NL / IQ4_XS on AVX-512: the 16 candidate scales of a block run as the 16 lanes of one
// register, each the reference's sums for its candidate in the reference's order
// (quants-iq4-lanes.h says why the bytes equal the reference's).
#include "quants-iq4-lanes.h"

template struct ggq::iq4_simd<16>;
