"""``general.*`` model-card metadata as gguf-py's ``Metadata`` heuristics derive it: name, organization,
basename, finetune, version and size label from the model id (``_name_or_path`` or the directory name),
and license, tags and languages from the README.md front matter (when PyYAML is installed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

STR, ARR = 8, 9


def id_to_title(s: str) -> str:
    return " ".join(w.title() if w.islower() and not re.match(r"^(v\d+(?:\.\d+)*|\d.*)$", w) else w
                    for w in s.strip().replace("-", " ").split())


def model_id_components(model_id: str | None, total_params: int = 0) -> tuple[Any, ...]:
    """(full name, organization, basename, finetune, version, size label) of a Hugging Face model id."""
    if model_id is None:
        return (None,) * 6
    if " " in model_id:
        return (model_id, None, None, None, None, None)
    if "/" in model_id:
        org, full = model_id.split("/", 1)
    else:
        org, full = None, model_id
    if org is not None and org[:1] == ".":
        org = None
    parts = [p for p in full.split("-") if p]
    kinds: list[set[str]] = [set() for _ in parts]
    for i, part in enumerate(parts):
        if re.fullmatch(r"(v|iter)?\d+([.]\d+)*", part, re.IGNORECASE):
            kinds[i].add("version")
        elif re.fullmatch(r"i?q\d(_\w)*|b?fp?(16|32)", part, re.IGNORECASE):
            kinds[i].add("type")
            parts[i] = part.upper()
        elif i > 0 and re.fullmatch(r"(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)", part,
                                    re.IGNORECASE):
            part = part.replace("_", ".")
            if part[-1].isdecimal():
                part = part[:-2] + "." + part[-1] + part[-2]
            if len(part) > 1 and part[-2].isdecimal() and part[-1] in "kmbt":
                part = part[:-1] + part[-1].upper()
            if total_params != 0:
                try:
                    label = float(part[:-1]) * pow(1000, " KMBT".find(part[-1]))
                    if (total_params < 0 and label < abs(total_params) // 8) or (
                            total_params > 0 and abs(label - total_params) > 7 * total_params // 8):
                        kinds[i].add("finetune")
                        part = part[:-1] + part[-1].lower()
                except ValueError:
                    pass
            if not kinds[i]:
                kinds[i].add("size_label")
            parts[i] = part
        elif i > 0 and re.fullmatch(r"chat|instruct|vision|lora", part, re.IGNORECASE):
            kinds[i].add("type" if total_params < 0 and part.lower() == "lora" else "finetune")
    if any(c.isdecimal() for n, t in zip(parts, kinds) if "size_label" in t for c in n):
        for n, t in zip(parts, kinds):
            if "size_label" in t and all(c.isalpha() for c in n):
                t.remove("size_label")
    at_start = True
    for part, t in zip(parts, kinds):
        if at_start and ((not t and part[0].isalpha()) or "version" in t):
            t.add("basename")
        else:
            at_start = False
            if not t:
                t.add("finetune")
    for part, t in zip(reversed(parts), reversed(kinds)):
        if "basename" in t and len(t) > 1:
            t.remove("basename")
        else:
            break
    basename = "-".join(n for n, t in zip(parts, kinds) if "basename" in t) or None
    size_label = "-".join(dict.fromkeys(s for s, t in zip(parts, kinds) if "size_label" in t)) or None
    finetune = "-".join(f for f, t in zip(parts, kinds) if "finetune" in t) or None
    version = "-".join(v for v, t in zip(parts, kinds) if "version" in t and "basename" not in t) or None
    if size_label is None and finetune is None and version is None:
        basename = None
    return full, org, basename, finetune, version, size_label


def _model_card(model_dir: Path | None) -> dict:
    if model_dir is None or not (model_dir / "README.md").is_file():
        return {}
    try:
        import yaml
    except ImportError:
        return {}
    lines = (model_dir / "README.md").read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0] != "---":
        return {}
    body = []
    for ln in lines[1:]:
        if ln == "---":
            break
        body.append(ln)
    text = ("\n".join(body) + "\n").replace("- no\n", '- "no"\n').replace("\t", "  ")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def general_entries(hparams: dict, model_dir: Path | None, total_params: int, size_label_fallback: str | None,
                    name: str | None = None) -> list[tuple]:
    """The ``general.*`` entries written between ``general.type`` and the architecture's parameters."""
    card = _model_card(model_dir)
    meta: dict[str, Any] = {}
    for key in ("name", "author", "version", "organization", "description", "finetune", "basename",
                "size_label", "license", "license_name", "license_link"):
        if key in card and card[key] is not None and key in ("name", "author", "version", "organization",
                                                              "description", "license", "license_name",
                                                              "license_link"):
            meta[key] = card[key]
    for key, card_keys in (("tags", ("tags", "pipeline_tag")), ("languages", ("languages", "language"))):
        vals: list = []
        for ck in card_keys:
            v = card.get(ck)
            if isinstance(v, str):
                vals.append(v)
            elif isinstance(v, list):
                vals.extend(v)
        if vals or any(ck in card for ck in card_keys):
            meta[key] = vals
    if name is not None:
        meta["name"] = name

    def fill(model_id: str | None) -> None:
        full, org, base, fine, ver, size = model_id_components(model_id, total_params)
        if meta.get("name") is None and full is not None:
            meta["name"] = id_to_title(full)
        for k, v in (("organization", org and id_to_title(org)), ("basename", base), ("finetune", fine),
                     ("version", ver), ("size_label", size)):
            if meta.get(k) is None and v is not None:
                meta[k] = v

    nop = hparams.get("_name_or_path")
    if isinstance(nop, str) and nop.count("/") <= 1:
        fill(nop)
    if model_dir is not None:
        fill(model_dir.resolve().name)
    if meta.get("size_label") is None and size_label_fallback:
        meta["size_label"] = size_label_fallback
    if meta.get("name") is None:
        meta["name"] = "model"
    out: list[tuple] = [("general.name", str(meta["name"]), STR, None)]
    for k in ("author", "version", "organization", "finetune", "basename", "description", "size_label"):
        if meta.get(k) is not None:
            out.append((f"general.{k}", str(meta[k]), STR, None))
    lic = meta.get("license")
    if lic is not None:
        out.append(("general.license", ",".join(lic) if isinstance(lic, list) else str(lic), STR, None))
    for k in ("license_name", "license_link"):
        if meta.get(k) is not None:
            out.append((f"general.{k.replace('_name', '.name').replace('_link', '.link')}", str(meta[k]), STR, None))
    if meta.get("tags") is not None:
        out.append(("general.tags", [str(x) for x in meta["tags"]], ARR, STR))
    if meta.get("languages") is not None:
        out.append(("general.languages", [str(x) for x in meta["languages"]], ARR, STR))
    return out
