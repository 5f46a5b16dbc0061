// MLX modes on AVX2: eight values per vector, each lane the scalar kernel's operations
// (mlx-quant-lanes.h says why the bytes are the scalar kernels').
#include "mlx-quant-lanes.h"

template struct ggq::mlx_simd<8>;
