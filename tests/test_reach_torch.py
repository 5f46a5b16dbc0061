"""torch in and out: ggquant.quantize on torch tensors, safe_open(framework="pt"), save_file of torch tensors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ggquant

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("qtype", ["q4_K", "q8_0", "bf16", "f16"])
def test_quantize_torch_equals_numpy(rng, dtype, qtype):
    x = torch.from_numpy(rng.standard_normal((4, 256)).astype(np.float32)).to(getattr(torch, dtype))
    x.requires_grad_(True)
    ref_src = x.detach().float().numpy() if dtype == "bfloat16" else x.detach().numpy()
    got = ggquant.quantize(x, qtype)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, ggquant.quantize(ref_src, qtype))


def test_quantize_torch_parameter_noncontiguous_and_imatrix(rng):
    w = torch.nn.Parameter(torch.from_numpy(rng.standard_normal((256, 8)).astype(np.float32)))
    imx = torch.from_numpy(rng.random(256).astype(np.float32))
    got = ggquant.quantize(w.t(), "q4_K", imatrix=imx)  # a transposed (non-contiguous) view
    ref = ggquant.quantize(np.ascontiguousarray(w.detach().numpy().T), "q4_K", imatrix=imx.numpy())
    np.testing.assert_array_equal(got, ref)


def test_quantize_torch_float8_and_mlx_mode(rng):
    x = torch.from_numpy(rng.standard_normal((2, 64)).astype(np.float32)).to(torch.float8_e4m3fn)
    np.testing.assert_array_equal(ggquant.quantize(x, "q8_0"), ggquant.quantize(x.float().numpy(), "q8_0"))
    y = torch.from_numpy(rng.standard_normal((2, 64)).astype(np.float32)).to(torch.bfloat16)
    a, b = ggquant.quantize(y, "int4"), ggquant.quantize(y.float().numpy(), "int4")
    np.testing.assert_array_equal(a.weight, b.weight)


def test_quantize_torch_integer_is_a_ggquant_error():
    with pytest.raises(ggquant.GGQuantError):
        ggquant.quantize(torch.ones((2, 32), dtype=torch.int32), "q8_0")


def test_numpy_use_does_not_import_torch():
    code = ("import numpy as np, sys, ggquant; ggquant.quantize(np.ones((1, 32), np.float32), 'q8_0'); "
            "import tempfile, os; p = os.path.join(tempfile.mkdtemp(), 'a.safetensors'); "
            "ggquant.save_file({'a': np.ones(2, np.float32)}, p); ggquant.safe_open(p).get('a'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


_DTYPES = ["float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool",
           "float8_e4m3fn", "float8_e5m2", "complex64", "uint16", "uint32", "uint64"]


def _sample(name, shape, rng):
    dt = getattr(torch, name)
    x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32) * 10)
    if name == "bool":
        return x > 0
    if name.startswith("uint") and name != "uint8":
        return x.abs().to(torch.int64).to(dt)
    return x.to(dt)


def test_save_file_bytes_equal_safetensors_torch(tmp_path, rng):
    tensors = {f"t_{n}": _sample(n, (3, 5), rng) for n in _DTYPES}
    tensors["scalar"] = torch.tensor(2.5)
    tensors["empty"] = torch.zeros((0, 4), dtype=torch.bfloat16)
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    ggquant.save_file(tensors, ours, metadata={"format": "pt"})
    st_torch.save_file(tensors, str(theirs), metadata={"format": "pt"})
    assert ours.read_bytes() == theirs.read_bytes()


def test_save_file_refuses_what_safetensors_refuses(tmp_path):
    base = torch.zeros((4, 4))
    with pytest.raises(ggquant.SafetensorsError, match="share memory"):
        ggquant.save_file({"a": base, "b": base[1:]}, tmp_path / "x.safetensors")
    with pytest.raises(ggquant.SafetensorsError, match="not contiguous"):
        ggquant.save_file({"a": base.t()[:, :2]}, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_safe_open_pt_zero_copy_and_values(tmp_path, rng):
    tensors = {f"t_{n}": _sample(n, (3, 6), rng) for n in _DTYPES}
    tensors["empty"] = torch.zeros((0, 2))
    p = tmp_path / "m.safetensors"
    st_torch.save_file(tensors, str(p))
    with ggquant.safe_open(p, framework="pt") as f:
        assert sorted(f.keys()) == sorted(tensors)
        got = {k: f.get(k) for k in f.keys()}
    ref = st_torch.load_file(str(p))
    for k, v in got.items():
        assert isinstance(v, torch.Tensor) and v.dtype == ref[k].dtype and v.shape == ref[k].shape, k
        assert torch.equal(v.view(torch.uint8) if v.numel() else v, ref[k].view(torch.uint8) if v.numel() else ref[k]), k
    a, b = got["t_float32"], got["t_int64"]
    assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()  # one mapping, no copies
    before = p.read_bytes()
    a.add_(1.0)  # copy-on-write: the tensor changes, the file does not
    assert torch.equal(a, ref["t_float32"] + 1.0)
    assert p.read_bytes() == before


def test_safe_open_framework_names(tmp_path):
    p = tmp_path / "a.safetensors"
    ggquant.save_file({"a": np.arange(4, dtype=np.float32)}, p)
    assert isinstance(ggquant.safe_open(p, framework="torch")["a"], torch.Tensor)
    assert isinstance(ggquant.safe_open(p, framework="numpy")["a"], np.ndarray)
    with pytest.raises(ggquant.GGQuantError, match="framework 'tf'"):
        ggquant.safe_open(p, framework="tf")
