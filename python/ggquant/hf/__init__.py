"""Hugging Face checkpoint support for :func:`ggquant.convert`: lazy tensor loading (``loader``),
architecture specs (``archs``), tokenizer metadata (``tokenizer``) and ``general.*`` naming (``naming``)."""
