"""The settings file: one schema for every key and type (issue 12, finding 6)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hubbub.hub.config_schema import ConfigError
from hubbub.hub.settings import hub_config, settings


def _toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def test_history_false_turns_history_off() -> None:
    config = hub_config(_toml("[namespaces.log]\nhistory = false\n[namespaces.chat]\n"))
    assert config.namespaces["log"].history.max_len == 0
    assert config.namespaces["chat"].history.max_len == 100  # the default stays
    assert set(config.namespaces) == {"log", "chat"}  # the built-in ones are replaced


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[namespaces.chat]\nhistroy_size = 5\n", "namespaces.chat.histroy_size: unknown key"),
        ("[namespaces.chat]\nhistory = 'no'\n", "namespaces.chat.history: expected a boolean"),
        ("[namespaces.chat]\npresence = 1\n", "namespaces.chat.presence: expected a boolean"),
        ("[namespaces.chat]\npublish = 'everyone'\n", "namespaces.chat.publish: expected one of"),
        ("[namespaces.chat]\nhistory_size = -1\n", "namespaces.chat.history_size: must be at"),
        ("[namespaces.chat]\nhistory = false\nhistory_size = 9\n", "contradicts history_size"),
        ("[namespaces]\nchat = 1\n", "namespaces.chat: expected a table"),
        ("[limits]\nmax_channels = 'many'\n", "limits.max_channels: expected an integer"),
        ("[limits]\ncommand_rate = true\n", "limits.command_rate: expected a number"),
        ("[limits]\nmax_chanels = 5\n", "limits.max_chanels: unknown key"),
        ("[inbox]\nmax_len = 1.5\n", "inbox.max_len: expected an integer"),
        ("[inbox]\nmax_size = 1\n", "inbox.max_size: unknown key"),
        ("prot = 8765\n", "prot: unknown key"),
        ("port = '8765'\n", "port: expected an integer"),
        ("dev = 'yes'\n", "dev: expected a boolean"),
        ("origins = 'https://a.example'\n", "origins: expected a list of strings"),
        ("origins = [1]\n", "origins[0]: expected a string"),
        ("limits = 3\n", "limits: expected a table"),
    ],
)
def test_every_key_and_type_is_checked(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[")):
        hub_config(_toml(text))


def test_a_valid_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(
        'host = "127.0.0.1"\nport = 9000\ndev = true\norigins = ["https://a.example"]\n'
        "[limits]\nmax_channels = 10\ncommand_rate = 20.5\n"
        "[inbox]\nmax_len = 10\nmax_age = 60\n"
        '[namespaces.chat]\npublish = "all"\nhistory_size = 5\nhistory_ttl = 0\n'
    )
    resolved, toml = settings(argparse.Namespace(config=str(path)), {})
    assert resolved["port"] == 9000
    config = hub_config(toml)
    assert config.max_channels == 10
    assert config.namespaces["chat"].history.max_age is None
    assert config.inbox.max_len == 10


def test_serve_names_the_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text("[namespaces.chat]\nhistory = 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hubbub", "serve", "--dev", "--port", "0", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "namespaces.chat.history: expected a boolean, got 0" in proc.stderr
