"""`salesboost bench` and `salesboost loadtest` without the loadtests package or the `load`
extra (the runtime image): one line that says what to install, exit status 2, no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from serve_apps.cli import app
from serve_apps.cli import main as cli_main

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        ["bench", "turn", "--json", "out.json"],
        ["bench", "retrieval", "--dataset", "d", "--json", "out.json"],
        ["loadtest", "--json", "out.json"],
        ["loadtest", "capacity", "--json", "out.json"],
    ],
)
def test_a_missing_load_extra_is_one_clear_line(command, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(cli_main.LOAD_MODULES, "no_such_module_here", "the loadtests package")
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "needs the loadtests package" in lines[0]
    assert ".[load]" in lines[0]
    assert not (tmp_path / "out.json").exists()
