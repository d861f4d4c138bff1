"""``[mcp.servers.NAME]``, ``[models."provider/model"]`` and ``[tools]``: parsing, errors
that name the key and what it must be, and secrets masked in ``config show``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.errors import ConfigError
from tests.conftest import write_config


def test_servers_models_and_limits_are_read(mschat_home: Path):
    write_config(
        mschat_home,
        '[mcp.servers.files]\ncommand = "npx"\nargs = ["-y", "server-filesystem", "/tmp"]\n'
        'env = { TOKEN = "s3cret-env-value-1234" }\nallow = ["read_file"]\ndeny = "*"\n'
        '[mcp.servers.web]\nurl = "https://bob:pw@mcp.example/mcp?api_key=k3y"\n'
        'headers = { Authorization = "Bearer very-secret-token-5678" }\nenabled = false\n'
        'remote_allow = ["*"]\ntimeout = 5\n'
        '[models."ollama/qwen"]\ntools = true\n[tools]\nmax_rounds = 3\n',
    )
    config = load_config()
    files, web = config.mcp_servers["files"], config.mcp_servers["web"]
    assert (files.command, files.args, files.allow, files.deny) == (
        "npx",
        ["-y", "server-filesystem", "/tmp"],
        ["read_file"],
        ["*"],
    )
    assert (files.enabled, files.timeout, web.enabled, web.timeout) == (True, 30.0, False, 5.0)
    assert config.models == {"ollama/qwen": {"tools": True}}
    assert (config.get("tools", "max_rounds"), config.get("tools", "max_result_chars")) == (
        3,
        20_000,
    )
    shown = config.masked_toml()
    for secret in ("s3cret-env-value", "very-secret-token", ":pw@", "k3y"):
        assert secret not in shown and secret not in repr(config) and secret not in repr(web)
    parsed = tomllib.loads(shown)  # still a valid config file
    assert parsed["mcp"]["servers"]["files"]["allow"] == ["read_file"]
    assert parsed["models"]["ollama/qwen"] == {"tools": True}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[mcp.servers.x]\ncommand = "a"\ntimeout = "soon"',
            "mcp.servers.x.timeout must be a number > 0",
        ),
        (
            '[mcp.servers.x]\ncommand = "a"\nallow = 3',
            'mcp.servers.x.allow must be a list of tool names, or "*"',
        ),
        (
            '[mcp.servers.x]\ncommand = "a"\nenv = { A = 1 }',
            "mcp.servers.x.env must be a table of strings",
        ),
        ('[mcp.servers.x]\ncommand = "a"\nport = 1', "unknown key mcp.servers.x.port"),
        ("[mcp.servers.x]\nenabled = true", "mcp.servers.x needs either command"),
        ('[mcp.servers.x]\ncommand = "a"\nurl = "http://h"', "not both"),
        ('[mcp.servers."a b"]\ncommand = "a"', "a server name must be letters"),
        ("[mcp.other]\nx = 1", "unknown key mcp.other"),
        ('[models."qwen"]\ntools = true', 'must be named "provider/model"'),
        ('[models."a/b"]\ntools = "maybe"', 'models."a/b".tools must be true or false'),
        ('[models."a/b"]\nvision2 = true', 'unknown key models."a/b".vision2'),
        ("[tools]\nmax_rounds = 0", "tools.max_rounds must be a positive integer"),
        (
            '[providers.p]\nbase_url = "http://h/v1"\ntools = "y"',
            "providers.p.tools must be true or false",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_it_must_be(mschat_home: Path, text: str, message: str):
    write_config(mschat_home, text)
    with pytest.raises(ConfigError, match=None) as info:
        load_config()
    assert message in str(info.value)
