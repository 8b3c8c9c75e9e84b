"""`msa-studio models`: list the model registry and which models have shipped weights."""
from __future__ import annotations

import argparse

NAME = "models"
HELP = "list available models and their default checkpoints"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    import json

    from analysis.engine import default_checkpoint
    from models.registry import model_names, model_summary

    rows = []
    for name in model_names():
        ckpt = default_checkpoint(name)
        rows.append({"name": name, "summary": model_summary(name), "default_checkpoint": ckpt})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows) if rows else 4
    for r in rows:
        weights = "shipped weights" if r["default_checkpoint"] else "no shipped weights (untrained)"
        print(f"{r['name']:<{width}}  [{weights}]  {r['summary']}")
    return 0
