// Q4_0 / Q8_0 and the weighted Q4_0..Q5_1 on AVX2: eight blocks share each scale step. Same
// operations as the reference, so the same bytes (quants-legacy-lanes.h).
#include "quants-legacy-lanes.h"

template struct ggq::legacy_simd<8>;
