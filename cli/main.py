"""`msa-studio` entry point: no arguments starts the GUI, `msa-studio FILE...` starts it on those files
(recordings or .msasession), otherwise dispatches a subcommand.

Routing (`route`, tested without Qt): a first argument that names a subcommand (or -h/--help) is a
command line; anything else is for the GUI, whose arguments are checked here first (files exist,
options known), so `msa-studio analyse x.mp4` (a typo) is a one-line error and not a window.

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
from dataclasses import dataclass, field
from pathlib import Path
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


def _gui_parser() -> argparse.ArgumentParser:
    from app.main import build_parser as gui_build_parser  # argparse only; Qt loads in app.main.main

    return gui_build_parser(OneLineParser)


def _gui_help() -> str:
    lines = ["the desktop app:",
             "  msa-studio                    start the app",
             "  msa-studio FILE [FILE ...]    start it on recordings or .msasession files (the first opens,",
             "                                the others wait in File > Open recent)",
             "  app options (with or without FILE):"]
    for action in _gui_parser()._actions:
        if action.option_strings and "-h" not in action.option_strings:
            flag = ", ".join(action.option_strings) + (f" {action.metavar or action.dest.upper()}"
                                                       if action.nargs != 0 else "")
            lines.append(f"    {flag:<26} {action.help}")
    return "\n".join(lines)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = OneLineParser(
        prog="msa-studio",
        usage="msa-studio [FILE ...] [app options]\n       msa-studio COMMAND [options]",
        description="Multimodal sentiment analysis of recordings. Without a COMMAND, the desktop app starts "
                    "(on the FILEs given).",
        epilog=_gui_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # prog: without it subcommands would take the two-line usage above as their name in messages
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="msa-studio")
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


@dataclass
class Route:
    kind: str  # "gui", "command" or "error"
    argv: list[str] = field(default_factory=list)
    error: str = ""


def _check_gui_file(path: str, commands: list[str], first: bool) -> str:
    """'' when `path` is a file the app can open, else the one-line reason."""
    p = Path(path)
    if p.is_file():
        return ""
    if p.is_dir():
        return (f"{path} is a folder; to analyse every recording in it: "
                f"msa-studio batch {path} --out OUT_DIR")
    if first and os.sep not in path and "." not in path:  # looks like a mistyped command
        return (f"{path!r} is neither a command ({', '.join(commands)}) nor an existing file "
                f"(see msa-studio --help)")
    return f"file not found: {path}"


def route(argv: list[str], commands: list[str]) -> Route:
    """Decide what `msa-studio ARGV` runs (see the module docstring). Starts nothing."""
    if not argv:
        return Route("gui", [])
    if argv[0] in commands or argv[0] in ("-h", "--help"):
        return Route("command", list(argv))
    try:
        args = _gui_parser().parse_args(argv)
    except UsageError as exc:
        return Route("error", error=str(exc).replace("msa-studio-gui", "msa-studio"))
    for i, path in enumerate(args.paths):
        problem = _check_gui_file(path, commands, first=i == 0)
        if problem:
            return Route("error", error=f"msa-studio: error: {problem}")
    return Route("gui", list(argv))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _quiet_third_party_logs()
    command_names = [m.NAME for m in _command_modules()]
    how = route(argv, command_names)
    if how.kind == "error":
        print(how.error, file=sys.stderr)
        return 2
    if how.kind == "gui":
        from app.main import main as gui_main  # Qt is imported only for the GUI

        return gui_main(how.argv)
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
