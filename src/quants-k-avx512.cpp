// K-quants on AVX-512: sixteen groups searched at once, one per lane. Each lane runs the scalar
// reference's operations for its group, in order and unfused, so the bytes are the reference's
// (quants-k-lanes.h).
#include "quants-k-lanes.h"

template struct ggq::kquants_simd<16>;
