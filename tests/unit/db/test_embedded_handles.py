"""A killed run no longer keeps the embedded PostgreSQL running for good."""

import json
import os
import subprocess
import sys

from db.embedded import forget_dead_handles


def _pid_of_a_finished_process() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_holders_that_are_gone_are_taken_off_the_list(tmp_path):
    handles = tmp_path / ".handle_pids.json"
    gone = _pid_of_a_finished_process()
    handles.write_text(json.dumps([gone, os.getpid()]))
    forget_dead_handles(tmp_path)
    assert json.loads(handles.read_text()) == [os.getpid()]


def test_no_list_or_an_unreadable_one_is_left_alone(tmp_path):
    forget_dead_handles(tmp_path)
    assert not (tmp_path / ".handle_pids.json").exists()
    (tmp_path / ".handle_pids.json").write_text("not json")
    forget_dead_handles(tmp_path)
    assert (tmp_path / ".handle_pids.json").read_text() == "not json"
