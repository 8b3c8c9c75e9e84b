"""Seal checkpoint sidecars: add the digest over their spec/config/notes (models/checkpoint.py).

    python -m models.recipes.seal_checkpoints assets/checkpoints/*.safetensors
    python -m models.recipes.seal_checkpoints --accept-edits runs/lnln/lnln.safetensors

Used once to upgrade the shipped checkpoints (format 1 -> 2) without retraining, and for checkpoints
an earlier version wrote. Each sidecar is sealed only after its weights match the `sha256` it
records. Repeatable: an already sealed, unedited sidecar is left byte-identical. A sealed sidecar
that was edited since is refused unless --accept-edits says the edit is intended.
"""
from __future__ import annotations

import argparse
import sys

from core.errors import MSAError
from models.checkpoint import seal_sidecar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.recipes.seal_checkpoints", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoint .safetensors (or .json or stem)")
    parser.add_argument("--accept-edits", action="store_true",
                        help="re-seal sidecars that were edited after sealing (you vouch for the edit)")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.checkpoints:
        try:
            wrote = seal_sidecar(path, accept_edits=args.accept_edits)
        except MSAError as exc:
            print(f"{path}: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: {'sealed' if wrote else 'already sealed, unchanged'}", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
