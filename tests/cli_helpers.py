"""Running the CLI the way the tests need it: in-process with its status and output, and stopping a server."""
from __future__ import annotations

import subprocess

from exiflang.cli import main


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; argparse's own exit (bad usage) counts as its status. (status, stdout, stderr)"""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a child (a `serve` under test), killing it when it does not stop within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
