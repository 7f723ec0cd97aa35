"""The command-line entry points: every command is listed, user errors exit 2 without a traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

from exiflang.cli import COMMAND_MODULES, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMAND_MODULES:
        assert name.replace("_", "-") in out


@pytest.mark.parametrize("entry", [["-m", "exiflang"], ["-m", "exiflang.cli"]])
def test_module_entry_points_report_user_errors_cleanly(tmp_path, entry):
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    proc = subprocess.run([sys.executable, *entry, "exif", str(not_an_image)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "notes.txt" in proc.stderr
