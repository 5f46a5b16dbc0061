"""The package's imports point one way (errors -> qtypes -> quants/mlx -> gguf/safetensors/imatrix ->
plan, hf -> convert -> cli) and no function imports one of ggquant's own modules."""

from __future__ import annotations

import ast
from pathlib import Path

import ggquant

PKG = Path(ggquant.__file__).resolve().parent

# module (dotted, below ggquant) -> layer; a module may import only modules of its layer or below
LAYERS: dict[str, int] = {
    "_core": 0, "errors": 0,
    "qtypes": 1, "gguf_values": 1, "config": 1, "progress": 1, "fileio": 1, "_checks": 1, "torch_io": 1, "hub": 1,
    "quants": 2, "mlx": 2, "batch": 2,
    "gguf": 3, "safetensors": 3, "imatrix": 3,
    "plan": 4, "hf": 4, "hf.checkpoint": 4, "hf.archs": 4, "hf.tokenizer": 4, "hf.naming": 4, "hf.pretok_hashes": 4,
    "hf.arch_gptoss": 4,
    "layout": 4, "inspect_file": 4, "calib_cache": 4, "mlx_recipes": 4,
    "hf.arch_granitemoe": 4, "hf.arch_deepseek": 4,
    "convert": 5, "convert.core": 5, "convert.stream": 5, "convert.to_gguf": 5, "convert.to_mlx": 5,
    "requantize": 5, "quality": 5,
    "precision": 6, "budget": 6,
    "cli": 7, "__main__": 7, "__init__": 8,
}
# known exceptions, each with its reason (the fix is to move the code up a layer)
UPWARD_OK = {("mlx", "safetensors")}  # mlx.save_expert_group / load_expert_group write and read blobs


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported ggquant module, line, inside a function) for each import of the package's own modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "__init__":
        pkg = []
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg[: len(pkg) - (child.level - 1)] if child.level > 1 else pkg
                    mod = ".".join([*base, *(child.module.split(".") if child.module else [])])
                    targets = [mod] if child.module else [".".join([*base, a.name]) for a in child.names]
                    found.extend((t, child.lineno, in_function) for t in targets)
                elif child.module and child.module.split(".")[0] == "ggquant":
                    found.append((child.module[len("ggquant."):] or "__init__", child.lineno, in_function))
            elif isinstance(child, ast.Import):
                found.extend((a.name[len("ggquant."):], child.lineno, in_function) for a in child.names
                             if a.name.split(".")[0] == "ggquant")
            visit(child, local)

    visit(tree, False)
    return found


def _layer(mod: str) -> int | None:
    while mod:
        if mod in LAYERS:
            return LAYERS[mod]
        mod = mod.rpartition(".")[0]
    return None


def test_no_function_local_imports_of_ggquant_modules():
    bad = [f"{p.relative_to(PKG)}:{line}: imports {mod}" for name, p in _modules().items()
           for mod, line, local in _imports(name, p) if local]
    assert not bad, "\n".join(bad)


def test_imports_point_one_way():
    bad = []
    for name, p in _modules().items():
        mine = _layer(name)
        for mod, line, _ in _imports(name, p):
            theirs = _layer(mod)
            if mine is None or theirs is None or (name.split(".")[0], mod.split(".")[0]) in UPWARD_OK:
                continue  # a module of another branch not placed yet
            if theirs > mine:
                bad.append(f"{p.relative_to(PKG)}:{line}: {name} (layer {mine}) imports {mod} (layer {theirs})")
    assert not bad, "\n".join(bad)


def test_the_table_knows_the_converter_and_core_modules():
    mods = _modules()
    assert {"convert.core", "convert.to_gguf", "convert.to_mlx", "hf.checkpoint", "gguf", "cli"} <= set(mods)
    assert "hf.loader" not in mods and "convert_mlx" not in mods  # one checkpoint reader, one converter package
