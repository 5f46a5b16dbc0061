// IQ1_S / IQ1_M search kernels on AVX2: 8 splits or 8 candidate grid points per instruction, the
// same answers as the portable kernels (quants-iq1-lanes.h says why).
#include "quants-iq1-lanes.h"

template struct ggq::iq1_simd<8>;
