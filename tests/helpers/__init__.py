"""Shared test helpers (tests/conftest.py puts tests/ on sys.path, so ``import helpers.x`` works).

- :mod:`helpers.compare`: bit-exact block and float comparisons with a readable report on mismatch.
- :mod:`helpers.ggml`: ggml's own C quantizers (tests/oracle/ggml_oracle.py) addressed by ggquant type names,
  and the one skip message used when they are missing (the ``ggml`` fixture in conftest.py).
- :mod:`helpers.gil`: the "two Python threads inside a kernel at once" check.
- :mod:`helpers.data`: inputs shared by kernel tests (random bytes read as blocks, importance vectors).
- :mod:`helpers.gguf_files`: a GGUF file's tensors as bytes, two files compared tensor by tensor, model directory copies.
- :mod:`helpers.mlx_data`: the deterministic matrices of the MLX-mode tests.
"""
