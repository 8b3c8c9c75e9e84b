"""`msa-studio` entry point: no arguments starts the GUI, otherwise dispatches a subcommand.

Subcommands live in cli/cmd_*.py modules exposing NAME, HELP, add_arguments(parser) and run(args).
User errors print one line and exit 2 — never a traceback: core.errors.MSAError, command-line
mistakes (argparse would print its whole usage block first) and OSError (a file the system refused).
Each command checks its options and output paths before its long work (core.output_paths).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from types import ModuleType

import cli
from core.errors import Cancelled, MSAError


def _command_modules() -> list[ModuleType]:
    mods = []
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name.startswith("cmd_"):
            mods.append(importlib.import_module(f"cli.{info.name}"))
    return sorted(mods, key=lambda m: m.NAME)


class UsageError(Exception):
    """A command-line mistake (unknown option, missing or malformed value)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the usage block and then the error; here a mistake is one line (main prints
    it). Subparsers inherit the class, so every subcommand behaves the same."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = OneLineParser(
        prog="msa-studio",
        description="Multimodal sentiment analysis of recordings. Run without arguments for the GUI.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, ModuleType] = {}
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        commands[mod.NAME] = mod
    return parser, commands


def _quiet_third_party_logs() -> None:
    # MediaPipe/TFLite (glog) and Hugging Face print banners and their own progress bars that would
    # interleave with ours; users can still override these variables.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _quiet_third_party_logs()
    if not argv:
        from app.main import main as gui_main  # Qt is imported only for the GUI

        return gui_main([])
    parser, commands = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(commands[args.command].run(args) or 0)
    except Cancelled:
        print("msa-studio: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head` that closed early: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("msa-studio: interrupted", file=sys.stderr)
        return 130
    except MSAError as exc:
        print(f"msa-studio: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a disk that filled up or a file that vanished mid-run
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"msa-studio: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
