"""The ``ggquant`` command line. Subcommands grow with the package; each is a small function."""

from __future__ import annotations

import argparse
import sys

from . import config as _config


def _cmd_config(args: argparse.Namespace) -> int:
    _config.show_config()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ggquant", description="Fast, bit-exact GGUF and MLX quantization.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("config", help="show version, OpenMP, threads and SIMD level")
    c.set_defaults(func=_cmd_config)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
