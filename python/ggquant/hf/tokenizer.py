"""Tokenizer metadata for GGUF (``tokenizer.ggml.*``), as llama.cpp's convert_hf_to_gguf.py writes it.

BPE vocabularies come from ``tokenizer.json`` (GPT-2 byte-level, ``tokenizer.ggml.model = "gpt2"``),
SentencePiece vocabularies from ``tokenizer.model`` (``"llama"``, needs the ``sentencepiece`` package).
Special token ids, add_bos/add_eos and the chat template come from ``tokenizer_config.json``,
``tokenizer.json`` and ``config.json`` like gguf-py's ``SpecialVocab``.

Each function returns a list of ``(key, value, value_type, element_type)`` entries in write order.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..errors import GGQuantError
from ..fileio import read_regular_file, read_text_file
from ..gguf_values import GGUFValueType as VT
from .pretok_hashes import CHKTXT, PRE_BY_HASH

# short names of the GGUF value types (ggquant.gguf_values) the metadata entries use
U32, I32, F32, BOOL, STR, ARR = VT.UINT32, VT.INT32, VT.FLOAT32, VT.BOOL, VT.STRING, VT.ARRAY

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

Entry = tuple[str, Any, int, "int | None"]  # (key, value, GGUF value type, element type of an array or None)

# tokenizer.json pre-tokenizer regexes -> llama.cpp pre-tokenizer names (fallback when the token-id
# hash of convert_hf_to_gguf.py is unknown, e.g. a freshly trained vocabulary with a standard regex)
_PRE_BY_REGEX = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)": "gpt-2",
    (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
     r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
     r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"): "gpt-4o",  # o200k (gpt-oss, GPT-4o)
}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(read_text_file(path, "tokenizer file"))
    except (OSError, ValueError) as e:
        raise GGQuantError(f"{path}: cannot read JSON: {e}") from e


def looks_special(token: str) -> bool:
    """convert_hf_to_gguf.py's ``does_token_look_special``."""
    if token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]"):
        return True
    if token.startswith("<|") and token.endswith("|>"):
        return True
    if token.startswith("<\uff5c") and token.endswith("\uff5c>"):
        return True
    return token.startswith("<unused") and token.endswith(">")


def _pre_from_regex(tj: dict[str, Any]) -> str | None:
    pre = tj.get("pre_tokenizer") or {}
    items = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    for p in items:
        if p.get("type") == "Split":
            rx = (p.get("pattern") or {}).get("Regex")
            if rx in _PRE_BY_REGEX:
                return _PRE_BY_REGEX[rx]
    if len(items) == 1 and items[0].get("type") == "ByteLevel" and items[0].get("use_regex", True):
        return "gpt-2"
    return None


def bpe_pre_name(model_dir: Path, tj: dict[str, Any]) -> str:
    """``tokenizer.ggml.pre``: from the chkhsh of convert_hf_to_gguf.py when ``tokenizers`` is installed
    and the hash is known, else from the pre-tokenizer regex in tokenizer.json."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        Tokenizer = None  # type: ignore[misc,assignment]
    if Tokenizer is not None:
        tok = Tokenizer.from_str(read_text_file(model_dir / "tokenizer.json", "tokenizer file"))  # any path, FIFO-safe
        ids = tok.encode(CHKTXT).ids
        h = hashlib.sha256(str(ids).encode()).hexdigest()
        if h in PRE_BY_HASH:
            return PRE_BY_HASH[h]
    name = _pre_from_regex(tj)
    if name is None:
        raise GGQuantError(
            f"{model_dir / 'tokenizer.json'}: BPE pre-tokenizer not recognized (neither the token-id hash of "
            f"llama.cpp's convert_hf_to_gguf.py nor a known pre-tokenizer regex); llama.cpp could not tokenize "
            f"like this model"
        )
    return name


def _roundtrip(model_dir: Path, token: str) -> str:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return token
    tok = Tokenizer.from_str(read_text_file(model_dir / "tokenizer.json", "tokenizer file"))  # any path, FIFO-safe
    return tok.decode(tok.encode(token, add_special_tokens=False).ids, skip_special_tokens=False)


def bpe_vocab(model_dir: Path, hparams: dict[str, Any]) -> list[Entry]:
    """GPT-2 style BPE from tokenizer.json (``_set_vocab_gpt2``)."""
    tj_path = model_dir / "tokenizer.json"
    if not tj_path.is_file():
        raise GGQuantError(f"{model_dir}: no tokenizer.json (BPE) or tokenizer.model (SentencePiece) found")
    tj = _read_json(tj_path)
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise GGQuantError(f"{tj_path}: tokenizer model type {model.get('type')!r} is not supported (expected BPE)")
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {int(a["id"]): a for a in tj.get("added_tokens", [])}
    for i, a in added.items():
        vocab.setdefault(a["content"], i)
    vocab_size = int(hparams.get("vocab_size", len(vocab)))
    if vocab and max(vocab.values()) >= vocab_size:
        raise GGQuantError(f"{tj_path}: token id {max(vocab.values())} >= vocab_size {vocab_size} of config.json")
    pre = bpe_pre_name(model_dir, tj)
    reverse = {i: t for t, i in vocab.items()}
    added_contents = {a["content"] for a in added.values()}
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
            continue
        tok = reverse[i]
        if tok in added_contents and i in added:
            a = added[i]
            if not a.get("normalized", True):
                tok = _roundtrip(model_dir, tok)
            if a.get("special") or looks_special(tok):
                types.append(CONTROL)
            else:
                tok = tok.replace("\u2581", " ")
                types.append(USER_DEFINED)
        else:
            types.append(NORMAL)
        tokens.append(tok)
    out: list[Entry] = [
        ("tokenizer.ggml.model", "gpt2", STR, None),
        ("tokenizer.ggml.pre", pre, STR, None),
        ("tokenizer.ggml.tokens", tokens, ARR, STR),
        ("tokenizer.ggml.token_type", types, ARR, I32),
    ]
    out += special_vocab(model_dir, load_merges=True, tj=tj)
    return out


def is_llama_hf(model_dir: Path) -> bool:
    """tokenizer.json holds a SentencePiece-style byte-fallback BPE (Llama 2 / Mistral ``LlamaHfVocab``)."""
    p = model_dir / "tokenizer.json"
    if not p.is_file():
        return False
    tj = _read_json(p)
    m = tj.get("model") or {}
    if m.get("type") == "BPE" and m.get("ignore_merges", False) and not m.get("byte_fallback", True):
        return False  # Llama 3 style
    return m.get("type") == "BPE" and bool(m.get("byte_fallback")) and (tj.get("decoder") or {}).get("type") == "Sequence"


def llama_hf_vocab(model_dir: Path, hparams: dict[str, Any]) -> list[Entry]:
    """SentencePiece-style vocabulary from tokenizer.json alone (``_set_vocab_llama_hf``)."""
    tj = _read_json(model_dir / "tokenizer.json")
    vocab: dict[str, int] = dict(tj["model"]["vocab"])
    base = len(vocab)
    specials = {int(a["id"]) for a in tj.get("added_tokens", []) if a.get("special")}
    reverse = {i: t for t, i in vocab.items()}
    added = sorted(((int(a["id"]), a) for a in tj.get("added_tokens", []) if int(a["id"]) >= base), key=lambda x: x[0])
    tokens, scores, types = [], [], []
    for i in range(base):
        t = reverse[i]
        tokens.append(t)
        scores.append(-1000.0)
        types.append(BYTE if re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", t) else CONTROL if i in specials else NORMAL)
    for i, a in added:
        tokens.append(a["content"])
        scores.append(-1000.0)
        types.append(CONTROL if a.get("special") else USER_DEFINED)
    return _llama_vocab(model_dir, tokens, scores, types)


def _llama_vocab(model_dir: Path, tokens: list[str], scores: list[float], types: list[int]) -> list[Entry]:
    # the entries of a SentencePiece-style ("llama") vocabulary, then the special tokens
    out: list[Entry] = [
        ("tokenizer.ggml.model", "llama", STR, None),
        ("tokenizer.ggml.pre", "default", STR, None),
        ("tokenizer.ggml.tokens", tokens, ARR, STR),
        ("tokenizer.ggml.scores", scores, ARR, F32),
        ("tokenizer.ggml.token_type", types, ARR, I32),
    ]
    out += special_vocab(model_dir, n_vocab=len(tokens))
    return out


def spm_vocab(model_dir: Path, hparams: dict[str, Any], phi3: bool = False) -> list[Entry]:
    """SentencePiece from tokenizer.model (``_set_vocab_sentencepiece``; ``phi3``: Phi3MiniModel's variant,
    which also reads tokenizer.json's added tokens and marks non-special added tokens USER_DEFINED as is)."""
    path = model_dir / "tokenizer.model"
    try:
        from sentencepiece import SentencePieceProcessor
    except ImportError as e:
        raise GGQuantError(f"{path}: reading a SentencePiece tokenizer needs the sentencepiece package "
                           f"(pip install sentencepiece)") from e
    sp = SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(read_regular_file(path, "tokenizer model"))  # any path, FIFO-safe
    except Exception as e:
        raise GGQuantError(f"{path}: not a SentencePiece model: {e}") from e
    if phi3:
        vocab_size = int(hparams.get("vocab_size") or sp.vocab_size())
    else:
        vocab_size = int(hparams.get("vocab_size_per_layer_input") or hparams.get("vocab_size") or sp.vocab_size())
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    scores = [-10000.0] * vocab_size
    types = [UNUSED] * vocab_size
    for i in range(min(sp.vocab_size(), vocab_size)):
        t = NORMAL
        if sp.IsUnknown(i):
            t = UNKNOWN
        elif sp.IsControl(i):
            t = CONTROL
        elif sp.IsUnused(i):
            t = UNUSED
        elif sp.IsByte(i):
            t = BYTE
        tokens[i], scores[i], types[i] = sp.IdToPiece(i), float(sp.GetScore(i)), t
    added_file = model_dir / "added_tokens.json"
    if added_file.is_file():
        for key, i in _read_json(added_file).items():
            if int(i) < vocab_size:
                tokens[int(i)], scores[int(i)], types[int(i)] = key, -1000.0, USER_DEFINED
    tc_file = model_dir / "tokenizer_config.json"
    if tc_file.is_file():
        for k, data in (_read_json(tc_file).get("added_tokens_decoder") or {}).items():
            i = int(k)
            if i >= vocab_size:
                if phi3:
                    raise GGQuantError(f"{tc_file}: added token id {i} >= vocab_size {vocab_size}")
                continue
            tok = data["content"]
            if phi3:
                types[i] = CONTROL if data.get("special") else USER_DEFINED
            elif data.get("special") or looks_special(tok):
                types[i] = CONTROL
            else:
                tok = tok.replace("\u2581", " ")
                types[i] = USER_DEFINED
            scores[i], tokens[i] = -1000.0, tok
    tj_file = model_dir / "tokenizer.json"
    if phi3 and tj_file.is_file():
        for data in _read_json(tj_file).get("added_tokens", []):
            i = int(data["id"])
            if i >= vocab_size:
                raise GGQuantError(f"{tj_file}: added token id {i} >= vocab_size {vocab_size}")
            tokens[i], scores[i] = data["content"], -1000.0
            types[i] = CONTROL if data.get("special") else USER_DEFINED
    return _llama_vocab(model_dir, tokens, scores, types)


_ID_KEYS = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
            "pad": "padding_token_id", "mask": "mask_token_id", "eot": "eot_token_id", "eom": "eom_token_id"}
_ADD_KEYS = ("bos", "eos", "sep")


def special_vocab(model_dir: Path, *, load_merges: bool = False, n_vocab: int | None = None,
                  types: tuple[str, ...] = ("bos", "eos", "unk", "sep", "pad", "cls", "mask"),
                  fixed_ids: dict[str, int] | None = None, chat_template: bool = True,
                  tj: dict[str, Any] | None = None) -> list[Entry]:
    """Merges, special token ids, add_bos/add_eos and chat template (gguf-py ``SpecialVocab``)."""
    types = tuple(types)
    ids: dict[str, int] = {}
    add: dict[str, bool] = {}
    merges: list[str] = []
    lowercase = strip_accents = None

    def set_id(typ: str, tid: Any) -> None:
        if not isinstance(tid, int) or isinstance(tid, bool):
            return
        if tid < 0:
            raise GGQuantError(f"{model_dir}: invalid id {tid} for special token {typ}")
        if (n_vocab is None or tid < n_vocab) and typ not in ids:
            ids[typ] = tid

    tj_path = model_dir / "tokenizer.json"
    if tj is None and tj_path.is_file():
        tj = _read_json(tj_path)
    tc_path = model_dir / "tokenizer_config.json"
    tc = _read_json(tc_path) if tc_path.is_file() else None
    added_tokens = (tj or {}).get("added_tokens", [])
    if tj:
        if load_merges:
            m = (tj.get("model") or {}).get("merges")
            if isinstance(m, list) and m:
                if isinstance(m[0], str):
                    merges = list(m)
                else:
                    merges = [" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in pair)
                              for pair in m]

        def parse_norm(n: dict[str, Any]) -> None:
            nonlocal lowercase, strip_accents
            t = n.get("type")
            if t == "Lowercase":
                lowercase = True
            elif t == "StripAccents":
                strip_accents = True
            elif t == "BertNormalizer":
                lowercase = n.get("lowercase", lowercase)
                strip_accents = n.get("strip_accents", strip_accents)
            elif t == "Sequence":
                for x in n.get("normalizers", []):
                    parse_norm(x)

        if tj.get("normalizer"):
            parse_norm(tj["normalizer"])
        cfg = tc or {}
        sp_bos, sp_cls, sp_eos, sp_sep = (cfg.get(k) for k in ("bos_token", "cls_token", "eos_token", "sep_token"))
        if not sp_bos and sp_cls and tc:
            tc["bos_token"] = sp_bos = sp_cls
        if not sp_eos and sp_sep and tc:
            tc["eos_token"] = sp_eos = sp_sep
        if isinstance(sp_bos, dict):
            sp_bos = sp_bos.get("content")
        if isinstance(sp_eos, dict):
            sp_eos = sp_eos.get("content")
        pp = tj.get("post_processor")
        if pp:
            for proc in pp.get("processors", [pp]):
                pt = proc.get("type")
                if pt == "ByteLevel":
                    add.setdefault("bos", False)
                    add.setdefault("eos", False)
                elif pt == "RobertaProcessing":
                    add["bos"] = add["eos"] = add["sep"] = True
                elif pt == "TemplateProcessing":
                    single = proc.get("single", [])
                    first = last = None
                    if len(single) > 1:
                        first = single[0].get("SpecialToken", {}).get("id")
                        if first:
                            if not tc:
                                sp_bos = first
                            elif first not in (sp_bos, sp_cls):
                                if not sp_bos:
                                    tc["bos_token"] = sp_bos = first
                                if not sp_cls:
                                    tc["cls_token"] = sp_cls = first
                            add["bos"] = first in (sp_bos, sp_cls)
                        last = single[-1].get("SpecialToken", {}).get("id")
                        if last:
                            if not tc:
                                sp_eos = last
                            elif last != sp_eos:
                                if "eot" not in types:
                                    types = types + ("eot",)
                                    tc["eot_token"] = sp_eos
                                elif "eom" not in types:
                                    types = types + ("eom",)
                                    tc["eom_token"] = sp_eos
                                tc["eos_token"] = sp_eos = last
                            add["eos"] = last == sp_eos
                    pair = proc.get("pair", [])
                    if pair:
                        start = 1 if first and pair[0].get("SpecialToken", {}).get("id") == first else 0
                        stop = -1 if last and pair[-1].get("SpecialToken", {}).get("id") == last else None
                        pair = pair[start:stop]
                        if pair:
                            a_id = pair[0].get("Sequence", {}).get("id")
                            b_id = pair[-1].get("Sequence", {}).get("id")
                            mid = pair[1:-1]
                            if a_id == "A" and b_id == "B" and mid:
                                add_sep = False
                                ent = mid[0].get("SpecialToken", {}).get("id")
                                if ent and ent in (sp_sep, sp_eos) and not last:
                                    add_sep = True
                                if len(mid) == 2:
                                    ent = mid[1].get("SpecialToken", {}).get("id")
                                    if ent and ent in (sp_sep, sp_eos):
                                        add_sep = True
                                add["sep"] = add_sep
                                if add_sep and not sp_sep and tc:
                                    tc["sep_token"] = sp_eos
    template = None
    if tc:
        alt = None
        jinja = model_dir / "chat_template.jinja"
        ctj = model_dir / "chat_template.json"
        if jinja.is_file():
            alt = read_text_file(jinja, "chat template")
        elif ctj.is_file():
            alt = _read_json(ctj).get("chat_template")
        template = tc.get("chat_template", alt)
        if not isinstance(template, (str, list)):
            template = None
        for typ in types:
            a = tc.get(f"add_{typ}_token")
            if isinstance(a, bool) and typ not in add:
                add[typ] = a
            entry = tc.get(f"{typ}_token")
            content = entry.get("content") if isinstance(entry, dict) else entry
            if not isinstance(content, str):
                continue
            set_id(typ, next((t.get("id") for t in added_tokens if t.get("content") == content), None))
    cfg_path = model_dir / "config.json"
    if cfg_path.is_file():
        cfg = _read_json(cfg_path)
        for typ in types:
            tid = cfg.get(f"{typ}_token_id")
            if tid is None and "text_config" in cfg:
                tid = cfg["text_config"].get(f"{typ}_token_id")
            set_id(typ, tid)
    for typ, tid in (fixed_ids or {}).items():
        if typ not in ids:
            ids[typ] = tid

    out: list[Entry] = []
    if merges:
        out.append(("tokenizer.ggml.merges", merges, ARR, STR))
    for typ, tid in ids.items():
        if typ in _ID_KEYS:
            out.append((f"tokenizer.ggml.{_ID_KEYS[typ]}", tid, U32, None))
    for typ, v in add.items():
        if typ in _ADD_KEYS:
            out.append((f"tokenizer.ggml.add_{typ}_token", bool(v), BOOL, None))
    if chat_template and template is not None:
        if isinstance(template, str):
            out.append(("tokenizer.chat_template", template, STR, None))
        else:
            names = []
            default = None
            for choice in template:
                nm = re.sub(r"[^A-Za-z0-9]", "_", choice.get("name", ""))
                if nm and choice.get("template") is not None:
                    if nm == "default":
                        default = choice["template"]
                    else:
                        names.append(nm)
                        out.append((f"tokenizer.chat_template.{nm}", choice["template"], STR, None))
            if names:
                out.append(("tokenizer.chat_templates", names, ARR, STR))
            if default is not None:
                out.append(("tokenizer.chat_template", default, STR, None))
    if lowercase is not None:
        out.append(("tokenizer.ggml.normalizer.lowercase", bool(lowercase), BOOL, None))
    if strip_accents is not None:
        out.append(("tokenizer.ggml.normalizer.strip_accents", bool(strip_accents), BOOL, None))
    return out
