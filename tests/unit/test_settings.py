"""``ServiceSettings.from_env``: defaults, and a clear error naming the variable when one is wrong."""

from __future__ import annotations

import pytest

from infra.kafka import free_port
from services.runtime.settings import ConfigurationError, ServiceSettings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "KAFKA_TOPIC_PREFIX",
        "CONSUMER_STALL_SECONDS",
        "CONSUMER_BATCH_SIZE",
        "CONSUMER_COMMIT_MS",
        "TAX_PORT",
        "TAX_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://tax@127.0.0.1/dossiers")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "tax")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "not-a-real-one")
    monkeypatch.setenv("SIGNING_KEY_REGISTRY", "/nonexistent/key-registry.json")
    return monkeypatch


def test_kafka_credentials_are_required(env: pytest.MonkeyPatch) -> None:
    env.delenv("KAFKA_SASL_PASSWORD")
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_PASSWORD"):
        ServiceSettings.from_env("tax", default_port=8002)


def test_a_key_registry_is_required(env: pytest.MonkeyPatch) -> None:
    env.delenv("SIGNING_KEY_REGISTRY")
    with pytest.raises(ConfigurationError, match="SIGNING_KEY_REGISTRY"):
        ServiceSettings.from_env("tax", default_port=8002)


def test_defaults_bind_to_localhost(env: pytest.MonkeyPatch) -> None:
    settings = ServiceSettings.from_env("tax", default_port=8002)
    assert (settings.host, settings.port, settings.topic_prefix) == ("127.0.0.1", 8002, "")
    assert settings.consumer_stall_seconds == 120
    assert settings.consumer_batch_size == 200
    assert settings.consumer_commit_seconds == 0.1
    assert settings.db_pool_size == 10


def test_stall_seconds_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("CONSUMER_STALL_SECONDS", "2.5")
    assert ServiceSettings.from_env("tax", default_port=8002).consumer_stall_seconds == 2.5


def test_batch_size_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("CONSUMER_BATCH_SIZE", "1")
    assert ServiceSettings.from_env("tax", default_port=8002).consumer_batch_size == 1


def test_commit_interval_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("CONSUMER_COMMIT_MS", "250")
    assert ServiceSettings.from_env("tax", default_port=8002).consumer_commit_seconds == 0.25


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONSUMER_STALL_SECONDS", "0"),
        ("CONSUMER_STALL_SECONDS", "soon"),
        ("CONSUMER_BATCH_SIZE", "0"),
        ("CONSUMER_BATCH_SIZE", "many"),
        ("CONSUMER_COMMIT_MS", "0"),
        ("CONSUMER_COMMIT_MS", "often"),
        ("DB_POOL_SIZE", "0"),
        ("TAX_PORT", "eighty"),
        ("KAFKA_TOPIC_PREFIX", "a b"),
    ],
)
def test_a_wrong_value_names_its_variable(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        ServiceSettings.from_env("tax", default_port=8002)


def test_no_database_url_says_how_to_set_it(env: pytest.MonkeyPatch) -> None:
    env.delenv("DATABASE_URL")
    with pytest.raises(ConfigurationError, match="DATABASE_URL is not set"):
        ServiceSettings.from_env("tax", default_port=8002)


def test_free_port_never_hands_out_a_port_twice() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
