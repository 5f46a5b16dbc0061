"""``general.*`` model-card metadata as gguf-py's ``Metadata`` heuristics derive it: name, organization,
basename, finetune, version and size label from the model id (``_name_or_path`` or the directory name);
licence, sources, base models, datasets, tags and languages from the README.md front matter (when
PyYAML is installed); sampling defaults from generation_config.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..gguf_values import GGUFValueType as VT
from .tokenizer import Entry

U32, I32, F32, STR, ARR = VT.UINT32, VT.INT32, VT.FLOAT32, VT.STRING, VT.ARRAY


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


def _model_card(model_dir: Path | None) -> dict[str, Any]:
    if model_dir is None or not (model_dir / "README.md").is_file():
        return {}
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
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


def _id_fields(out: dict[str, str], model_id: str, total_params: int) -> tuple[str | None, str | None]:
    """Put name, organization and version of a model id into ``out``; return (full name, organization)."""
    full, org, _, _, ver, _ = model_id_components(model_id, total_params)
    if full is not None:
        out["name"] = id_to_title(full)
    if org is not None:
        out["organization"] = id_to_title(org)
    if ver is not None:
        out["version"] = ver
    return full, org


def _source_entry(ref: Any, total_params: int) -> dict[str, Any] | None:
    """One ``base_model`` / ``datasets`` entry of a model card, as gguf-py's Metadata turns it into a dict."""
    if isinstance(ref, dict):
        return ref
    if not isinstance(ref, str):
        return None
    out: dict[str, str] = {}
    if ref.startswith(("http://", "https://", "ssh://")):
        out["repo_url"] = ref
        m = re.match(r"https?://huggingface.co/([^/]+/[^/]+)$", ref) if "huggingface.co" in ref else None
        if m:
            _id_fields(out, m.group(1), total_params)
        return out
    full, org = _id_fields(out, ref, total_params)
    if org is not None and full is not None:
        out["repo_url"] = f"https://huggingface.co/{org}/{full}"
    return out


_SAMPLING = (("sequence", ("sequence",), STR), ("top_k", ("top_k",), I32), ("top_p", ("top_p",), F32),
             ("min_p", ("min_p",), F32), ("xtc_probability", ("xtc_probability",), F32),
             ("xtc_threshold", ("xtc_threshold",), F32), ("temp", ("temperature",), F32),
             ("penalty_last_n", ("penalty_last_n",), I32), ("penalty_repeat", ("penalty_repeat", "repetition_penalty"), F32),
             ("mirostat", ("mirostat",), I32), ("mirostat_tau", ("mirostat_tau",), F32),
             ("mirostat_eta", ("mirostat_eta",), F32))


def _generation_config(model_dir: Path | None) -> dict[str, Any]:
    p = None if model_dir is None else model_dir / "generation_config.json"
    if p is None or not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def general_entries(hparams: dict[str, Any], model_dir: Path | None, total_params: int, size_label_fallback: str | None,
                    name: str | None = None) -> list[Entry]:
    """The ``general.*`` entries written between ``general.type`` and the architecture's parameters:
    sampling defaults from generation_config.json, then names, licence, sources, base models,
    datasets, tags and languages, in gguf-py's ``Metadata.set_gguf_meta_model`` order."""
    card = _model_card(model_dir)
    meta: dict[str, Any] = {}

    def use(key: str, card_key: str) -> None:
        if card_key in card and meta.get(key) is None:
            meta[key] = card[card_key]

    def use_list(key: str, card_key: str) -> None:
        v = card.get(card_key)
        if v is None:
            return
        cur = meta.get(key) or []
        cur += [v] if isinstance(v, str) else list(v) if isinstance(v, list) else []
        meta[key] = cur

    if card:
        for k in ("name", "author", "version", "organization", "description", "finetune", "basename", "size_label"):
            use(k, k)
        for k, ck in (("source_url", "url"), ("source_doi", "doi"), ("source_uuid", "uuid"), ("source_repo_url", "repo_url")):
            use(k, ck)
        for k in ("name", "author", "version", "organization", "description", "finetune", "basename", "size_label"):
            use(k, f"model_{k}")
        for k, ck in (("source_url", "model_url"), ("source_doi", "model_doi"), ("source_uuid", "model_uuid"),
                      ("source_repo_url", "model_repo_url")):
            use(k, ck)
        use("name", "model_name")
        use("author", "model_creator")
        use("basename", "model_type")
        for key, names in (("base_models", ("base_model", "base_models", "base_model_sources")),
                           ("datasets", ("datasets", "dataset", "dataset_sources"))):
            if any(n in card for n in names):
                value = card.get(names[0], card.get(names[1], card.get(names[2])))
                refs = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []
                meta[key] = [e for e in (_source_entry(r, total_params) for r in refs) if e is not None]
        use("license", "license")
        use("license_name", "license_name")
        use("license_link", "license_link")
        use_list("tags", "tags")
        use_list("tags", "pipeline_tag")
        use_list("languages", "languages")
        use_list("languages", "language")
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

    out: list[Entry] = []
    gen = _generation_config(model_dir)
    for key, gen_keys, vt in _SAMPLING:
        v = next((gen[g] for g in gen_keys if g in gen), None)
        if v is not None:
            out.append((f"general.sampling.{key}", str(v) if vt == STR else int(v) if vt == I32 else float(v), vt, None))
    out.append(("general.name", str(meta["name"]), STR, None))
    for k in ("author", "version", "organization", "finetune", "basename", "description", "size_label"):
        if meta.get(k) is not None:
            out.append((f"general.{k}", str(meta[k]), STR, None))
    lic = meta.get("license")
    if lic is not None:
        out.append(("general.license", ",".join(lic) if isinstance(lic, list) else str(lic), STR, None))
    for k, key in (("license_name", "general.license.name"), ("license_link", "general.license.link"),
                   ("source_url", "general.source.url"), ("source_doi", "general.source.doi"),
                   ("source_uuid", "general.source.uuid"), ("source_repo_url", "general.source.repo_url")):
        if meta.get(k) is not None:
            out.append((key, str(meta[k]), STR, None))
    for key, kind in (("base_models", "base_model"), ("datasets", "dataset")):
        if meta.get(key) is not None:
            out.append((f"general.{kind}.count", len(meta[key]), U32, None))
            for i, entry in enumerate(meta[key]):
                for f in ("name", "author", "version", "organization", "description", "url", "doi", "uuid", "repo_url"):
                    if f in entry:
                        out.append((f"general.{kind}.{i}.{f}", str(entry[f]), STR, None))
    if meta.get("tags") is not None:
        out.append(("general.tags", [str(x) for x in meta["tags"]], ARR, STR))
    if meta.get("languages") is not None:
        out.append(("general.languages", [str(x) for x in meta["languages"]], ARR, STR))
    return out
