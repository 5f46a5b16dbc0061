// IQ1_S / IQ1_M search kernels on AVX-512: 16 splits or 16 candidate grid points per instruction,
// the same answers as the portable kernels (quants-iq1-lanes.h says why).
#include "quants-iq1-lanes.h"

template struct ggq::iq1_simd<16>;
