"""The feature-cache flags `analyze` and `batch` share (one policy: analysis.analyzer)."""
from __future__ import annotations

import argparse


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--cache-dir", help="feature cache folder (default ~/.cache/msa-studio/features)")


def cache_policy(args: argparse.Namespace):
    """What `Analyzer(cache=...)` takes for these flags."""
    from analysis.analyzer import DEFAULT_CACHE

    return None if args.no_cache else (args.cache_dir or DEFAULT_CACHE)
