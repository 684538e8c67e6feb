"""Load profiles: the bundled ones validate, mistakes are refused before a stack starts."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from loadtests.command import LoadTestError, check_ready
from loadtests.profile import PROFILES_DIR, Profile, load_profile, resolve_profile_path


@pytest.mark.parametrize("path", sorted(PROFILES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_profiles_validate(path: Path):
    profile = load_profile(path)
    assert profile.name == path.stem


def test_the_default_profile_is_issue_20s():
    profile = load_profile("default")
    assert (profile.think.min_s, profile.think.max_s) == (10, 20)
    assert profile.users.trainee > 0
    assert profile.trainee.turns_per_session >= 1


def test_names_and_paths():
    assert resolve_profile_path("default") == PROFILES_DIR / "default.yaml"
    assert resolve_profile_path("x/y.yaml") == Path("x/y.yaml")
    assert resolve_profile_path("mine.yml") == Path("mine.yml")


@pytest.mark.parametrize(
    "data, complaint",
    [
        ({"users": {"trainee": 0, "manager": 0, "admin": 0, "knowledge": 0}}, "at least one"),
        ({"users": {"trainee": -1}}, "greater than or equal"),
        ({"users": {"trainees": 3}}, "Extra inputs"),  # a misspelt kind is not ignored
        ({"think": {"min_s": 20, "max_s": 10}}, "below min_s"),
        ({"trainee": {"mode": "chat"}}, "practice"),
        ({"trainee": {"sign_in": "sso"}}, "invite"),
        ({"trainee": {"turns_per_session": 0}}, "greater than or equal"),
        ({"ramp": {"spawn_rate": 0}}, "greater than"),
        ({"report_every_s": 0}, "greater than"),
        ({"search_queries": []}, "at least 1"),
    ],
)
def test_bad_profiles_are_refused(data: dict, complaint: str):
    with pytest.raises(ValidationError, match=complaint):
        Profile.model_validate({"name": "bad", **data})


def test_the_command_names_a_bad_profile_before_anything_starts(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("think: {min_s: 5, max_s: 1}\n")
    with pytest.raises(LoadTestError, match="below min_s"):
        check_ready(str(bad))
    with pytest.raises(LoadTestError, match="no profile 'nope'.*bundled: default"):
        check_ready("nope")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(LoadTestError, match="mapping"):
        check_ready(str(tmp_path / "list.yaml"))


def test_the_command_names_a_missing_dependency(monkeypatch):
    import loadtests.command as command

    monkeypatch.setattr(command, "NEEDED", {"no_such_module_here": "locust"})
    with pytest.raises(LoadTestError, match="needs locust"):
        check_ready("default")
