import os

import pytest

from serve_apps.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Settings read the environment: start each test from none of ours."""
    for key in list(os.environ):
        if key.startswith("SALESBOOST_") or key in {"DATABASE_URL", "REDIS_URL"}:
            monkeypatch.delenv(key)


def test_development_defaults_need_no_environment(tmp_path):
    settings = Settings(data_dir=tmp_path)
    settings.check_production_ready()
    assert settings.models_dir == tmp_path / "models"


def test_production_refuses_placeholder_secret_and_embedded_parts(tmp_path):
    settings = Settings(mode="production", data_dir=tmp_path)
    with pytest.raises(ValueError) as caught:
        settings.check_production_ready()
    message = str(caught.value)
    assert "SECRET_KEY" in message and "DATABASE_URL" in message and "REDIS_URL" in message


def test_production_starts_with_real_secret_and_urls(tmp_path):
    Settings(
        mode="production",
        data_dir=tmp_path,
        secret_key="k" * 40,
        database_url="postgresql+psycopg://app@db/salesboost",
        redis_url="redis://redis:6379/0",
    ).check_production_ready()


def test_urls_come_from_the_usual_environment_names(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://x@y/z")
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/0")
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url == "postgresql+psycopg://x@y/z"
    assert settings.redis_url == "redis://r:6379/0"


def test_settings_round_trip_through_the_environment(monkeypatch, tmp_path):
    original = Settings(data_dir=tmp_path, npc_max_tokens=24, redis_url="redis://r:1/0")
    for key, value in original.as_environment().items():
        monkeypatch.setenv(key, value)
    restored = Settings()
    assert restored.models_dir == original.models_dir
    assert restored.model_dump(exclude={"models_dir_override"}) == original.model_dump(
        exclude={"models_dir_override"}
    )


def test_engine_cpus_takes_auto_off_or_a_cpu_list(tmp_path):
    for value in ["auto", "off", "0", "0-2,5"]:
        assert Settings(data_dir=tmp_path, engine_cpus=value).engine_cpus == value
    for bad in ["", "all", "0-", "1;2"]:
        with pytest.raises(ValueError):
            Settings(data_dir=tmp_path, engine_cpus=bad)
