"""Hugging Face checkpoint support for the converters (:mod:`ggquant.convert`): the one checkpoint reader
(``checkpoint``), architecture specs (``archs``), tokenizer metadata (``tokenizer``) and ``general.*``
naming (``naming``)."""
