// MLX modes on AVX-512: sixteen values per vector, each lane the scalar kernel's operations
// (mlx-quant-lanes.h says why the bytes are the scalar kernels').
#include "mlx-quant-lanes.h"

template struct ggq::mlx_simd<16>;
