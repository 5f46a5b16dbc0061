"""Hugging Face checkpoint support for the converters (:mod:`ggquant.convert`): the one checkpoint reader
(``checkpoint``), architecture specs (``archs``, with families kept in their own ``arch_*`` modules), tokenizer
metadata (``tokenizer``) and ``general.*`` naming (``naming``)."""

# The arch_* modules subclass archs.Arch and register themselves in archs.ARCH_CLASSES when imported, so
# archs.py (which they import) never imports them; importing them here, in the package, registers them
# before anything can call archs.arch_for (importing ggquant.hf.archs runs this file first).
from . import arch_deepseek, arch_gptoss, arch_granitemoe  # noqa: F401
