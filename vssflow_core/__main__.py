"""The command line: ``python -m vssflow_core <command> ...``.

Commands:
  generate   sound and speech for a video, written as mp4 and/or wav (see ``vssflow_core.generate``)
  convert    an official VSSFlow checkpoint -> safetensors per component (see ``vssflow_core.convert``)
  download   fetch the public component weights into a models folder (see ``vssflow_core.weights.hub``)
  train      train or fine-tune from a config file, DDP through torchrun (see ``vssflow_core.train``)
  synthetic  write procedural sound and talking clips with manifests (see ``vssflow_core.synthetic``)
  distill    a few-step student of a checkpoint, guidance folded in (see ``vssflow_core.distill``)
"""

from __future__ import annotations

import sys


def _convert(argv: list[str]) -> int:
    from .convert import main

    return main(argv)


def _download(argv: list[str]) -> int:
    from .weights.cli import download_main

    return download_main(argv)


def _generate(argv: list[str]) -> int:
    from .generate import main

    return main(argv)


def _train(argv: list[str]) -> int:
    from .train.__main__ import main

    return main(argv)


def _synthetic(argv: list[str]) -> int:
    from .synthetic.__main__ import main

    return main(argv)


def _distill(argv: list[str]) -> int:
    from .distill.__main__ import main

    return main(argv)


COMMANDS = {"generate": _generate, "convert": _convert, "download": _download, "train": _train, "synthetic": _synthetic,
            "distill": _distill}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"unknown command '{command}'; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return COMMANDS[command](rest)


if __name__ == "__main__":
    sys.exit(main())
