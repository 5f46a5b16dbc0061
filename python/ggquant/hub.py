"""Hugging Face Hub ids where a model directory is expected (``ggquant convert Qwen/Qwen3-0.6B ...``).

:func:`resolve_model` returns a local directory unchanged; an ``owner/name`` id that is not a local
path is fetched with ``huggingface_hub.snapshot_download`` (an optional dependency, ``pip install
huggingface_hub``): only the files the converter reads (config, weights, tokenizer, chat template,
model card), from the local cache when they are there. ``HF_HUB_OFFLINE=1`` (or ``offline=True``)
never touches the network; ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_TOKEN`` are honoured as by every
Hugging Face tool. PyTorch ``.bin`` weights are fetched only for a repository without safetensors.

Example:
    >>> from ggquant.hub import resolve_model
    >>> resolve_model("Qwen/Qwen3-0.6B")  # doctest: +SKIP
    PosixPath('/root/.cache/huggingface/hub/models--Qwen--Qwen3-0.6B/snapshots/...')
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import GGQuantError, GGQuantIOError

#: The files a conversion reads; everything else in a repository (other formats, images) is skipped.
CONVERTER_FILES: tuple[str, ...] = (
    "*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "merges.txt", "vocab.txt", "*.jinja",
    "additional_chat_templates/*", "README.md",
)
_TORCH_FILES = ("pytorch_model*.bin",)
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_hub_id(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` names a Hub repository (``owner/name``) rather than an existing local path."""
    s = os.fspath(model)
    return not os.path.exists(s) and bool(_REPO_ID.match(s)) and ".." not in s


def _snapshot(repo_id: str, patterns: tuple[str, ...], kwargs: dict[str, Any]) -> Path:
    try:
        import huggingface_hub as hub
        from huggingface_hub import errors as hub_errors
    except ImportError:
        raise GGQuantError(f"{repo_id!r} is not a local directory; to download it from the Hugging Face Hub "
                           f"pip install huggingface_hub (or ggquant[hf])") from None
    try:
        return Path(hub.snapshot_download(repo_id, allow_patterns=list(patterns), **kwargs))
    except hub_errors.LocalEntryNotFoundError:
        raise GGQuantIOError(f"{repo_id!r}: not in the local Hugging Face cache and downloads are disabled "
                             f"(HF_HUB_OFFLINE or offline=True); run once online or pass a directory") from None
    except (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError, hub_errors.GatedRepoError) as e:
        raise GGQuantIOError(f"{repo_id!r}: {type(e).__name__}: {str(e).splitlines()[0]} (log in with "
                             f"`hf auth login` or set HF_TOKEN for gated or private models)") from None
    except (hub_errors.HfHubHTTPError, OSError) as e:
        raise GGQuantIOError(f"{repo_id!r}: download failed: {str(e).splitlines()[0] if str(e) else e!r}") from None


def resolve_model(model: str | os.PathLike[str], *, revision: str | None = None, offline: bool | None = None,
                  token: str | bool | None = None, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A local model directory for ``model``: the path itself, or the Hub snapshot of an ``owner/name`` id.

    Args:
        model: a local directory (returned as is) or a Hub repository id such as ``"Qwen/Qwen3-0.6B"``.
        revision: branch, tag or commit of the repository (default ``main``).
        offline: ``True`` reads only the local cache; ``None`` follows ``HF_HUB_OFFLINE``.
        token: Hub token (default: ``HF_TOKEN`` / the saved login).
        cache_dir: the Hub cache to use (default: ``HF_HUB_CACHE``, ``~/.cache/huggingface/hub``).

    Returns:
        The directory holding config.json, the weights and the tokenizer.

    Raises:
        GGQuantIOError: neither a local path nor a reachable repository (the message says why:
            offline without a cached copy, unknown or gated repository, network error).
        GGQuantError: a Hub id was given but huggingface_hub is not installed.

    Example:
        >>> from ggquant.hub import resolve_model
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> resolve_model(d) == Path(d)
        True
    """
    if not is_hub_id(model):
        return Path(model)
    repo_id = os.fspath(model)
    kwargs: dict[str, Any] = {"revision": revision, "token": token,
                              "cache_dir": None if cache_dir is None else os.fspath(cache_dir)}
    if offline:
        kwargs["local_files_only"] = True
    d = _snapshot(repo_id, CONVERTER_FILES, kwargs)
    if not any(d.glob("*.safetensors")):
        d = _snapshot(repo_id, CONVERTER_FILES + _TORCH_FILES, kwargs)
    return d


__all__ = ["CONVERTER_FILES", "is_hub_id", "resolve_model"]
