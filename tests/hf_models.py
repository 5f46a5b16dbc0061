"""Tiny Hugging Face models with real tokenizers, built offline (random weights, trained vocabularies).

Used by tests/test_convert.py; every builder saves with ``save_pretrained`` into a directory and
returns the transformers model, so the test can compare llama.cpp's logits with the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! This is a tiny corpus used to train a tokenizer for tests.",
    "Quantization maps floating-point weights to small integers with a scale per block.",
    "GGUF files hold tensors and key/value metadata; llama.cpp loads them directly.",
    "Numbers like 3, 33, 333 and 2026 appear too, as do symbols: (a+b)*c = d; e/f != g?",
    "Il était une fois un petit renard qui aimait les pommes et le fromage.",
    "She said: 'I'll be there', and he said 'We've seen it' — twice.",
    "   leading spaces, tabs\tand\nnew lines\n\nare part of the text.",
] * 4

TEST_TEXT = "Hello world! The lazy fox's 333 apples, (a+b) and new\nlines."

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# o200k (gpt-oss, GPT-4o): llama.cpp's "gpt-4o" pre-tokenizer
O200K_REGEX = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
               r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
               r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CHAT_TEMPLATE = "{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|end|>\n{% endfor %}"


def bpe_tokenizer(out_dir: Path, vocab_size: int, regex: str, bos: bool) -> None:
    """A byte-level BPE (GPT-2 style) with the given pre-tokenizer regex, saved as tokenizer.json."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|begin|>", "<|endoftext|>", "<|start|>", "<|end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(specials), special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(specials)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin|> $A", pair="<|begin|> $A <|begin|> $B", special_tokens=[("<|begin|>", tok.token_to_id("<|begin|>"))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin|>" if bos else None,
                                   eos_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)


def spm_tokenizer(out_dir: Path, vocab_size: int, dummy_prefix: bool = True) -> None:
    """A SentencePiece BPE model (Gemma/Llama-2 style ids: pad 0, eos 1, bos 2, unk 3) saved as tokenizer.model."""
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=buf, vocab_size=vocab_size, model_type="bpe",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, byte_fallback=True, character_coverage=1.0,
        add_dummy_prefix=dummy_prefix, normalization_rule_name="identity", split_digits=True,
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, minloglevel=2,
        user_defined_symbols=["<|endoftext|>", "<|end|>"])  # llama.cpp looks <|endoftext|> up for Phi-3
    (out_dir / "tokenizer.model").write_bytes(buf.getvalue())
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "add_bos_token": True, "add_eos_token": False, "chat_template": CHAT_TEMPLATE}))


def spm_json_tokenizer(out_dir: Path, vocab_size: int) -> int:
    """A SentencePiece-style byte-fallback BPE stored only as tokenizer.json (no tokenizer.model), as some
    Llama-2/Mistral uploads ship it; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "chat_template.jinja"):
        (out_dir / f).unlink(missing_ok=True)
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator([t.replace(" ", "\u2581") for t in CORPUS],
                            trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>").save_pretrained(out_dir)
    return len(tok.get_vocab())


def _save(model, out_dir: Path) -> None:
    model.save_pretrained(out_dir)


def reference_ids(model_dir: Path, text: str) -> list[int]:
    """Token ids of ``text`` by the model's own tokenizer library (sentencepiece or tokenizers), BOS included
    when the tokenizer adds it."""
    if (model_dir / "tokenizer.model").is_file():
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
        return [sp.bos_id(), *sp.encode(text)]
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(text).ids


def build(arch: str, out_dir: Path, *, hidden: int = 64, layers: int = 2, vocab: int = 384, seed: int = 0,
          tie: bool = False, dtype: str = "float32", rope_scaling: dict | None = None):
    """Build, save and return a tiny random ``arch`` model (llama, mistral, qwen2, gemma, phi3, mixtral, qwen2moe)."""
    import torch
    import transformers as tr

    torch.manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    heads, kv = 4, 2
    common = {"vocab_size": vocab, "hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": kv, "max_position_embeddings": 256,
              "rms_norm_eps": 1e-5, "tie_word_embeddings": tie}
    if rope_scaling is not None:
        common.update(rope_scaling=rope_scaling, rope_theta=500000.0)
    if arch == "gemma":
        common["tie_word_embeddings"] = True  # Gemma always ties (llama.cpp drops lm_head)
    if arch == "llama":
        cfg = tr.LlamaConfig(**common, bos_token_id=vocab - 4, eos_token_id=vocab - 3)
        model = tr.LlamaForCausalLM(cfg)
        bpe_tokenizer(out_dir, vocab, LLAMA3_REGEX, bos=True)
    elif arch == "mistral":
        cfg = tr.MistralConfig(**common, bos_token_id=2, eos_token_id=1, sliding_window=None)
        model = tr.MistralForCausalLM(cfg)
        spm_tokenizer(out_dir, vocab)
    elif arch == "qwen2":
        cfg = tr.Qwen2Config(**common, eos_token_id=vocab - 3)
        model = tr.Qwen2ForCausalLM(cfg)
        bpe_tokenizer(out_dir, vocab, QWEN2_REGEX, bos=False)
    elif arch == "gemma":
        cfg = tr.GemmaConfig(**common, head_dim=hidden // heads, bos_token_id=2, eos_token_id=1, pad_token_id=0,
                             hidden_activation="gelu_pytorch_tanh")
        model = tr.GemmaForCausalLM(cfg)
        spm_tokenizer(out_dir, vocab, dummy_prefix=False)
    elif arch == "phi3":
        cfg = tr.Phi3Config(**common, bos_token_id=2, eos_token_id=1, pad_token_id=0,
                            original_max_position_embeddings=256)
        model = tr.Phi3ForCausalLM(cfg)
        spm_tokenizer(out_dir, vocab)
    elif arch == "mixtral":
        cfg = tr.MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2, bos_token_id=vocab - 4,
                               eos_token_id=vocab - 3)
        model = tr.MixtralForCausalLM(cfg)
        bpe_tokenizer(out_dir, vocab, LLAMA3_REGEX, bos=True)
    elif arch == "qwen2moe":
        cfg = tr.Qwen2MoeConfig(**common, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=hidden,
                                shared_expert_intermediate_size=2 * hidden, eos_token_id=vocab - 3)
        model = tr.Qwen2MoeForCausalLM(cfg)
        bpe_tokenizer(out_dir, vocab, QWEN2_REGEX, bos=False)
    else:
        raise ValueError(arch)
    with torch.no_grad():  # non-trivial norms so that Gemma's +1 and norm handling are exercised
        for n, p in model.named_parameters():
            if "norm" in n:
                p.normal_(0.0 if arch == "gemma" else 1.0, 0.1)
    model = model.to(getattr(torch, dtype)).eval()
    _save(model, out_dir)
    return model
