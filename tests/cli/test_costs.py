"""What answers cost, as `mschat users show` and `mschat sessions show` print it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mschat.cli import cli
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAIThread


@pytest.fixture
def fake() -> Iterator[FakeOpenAIThread]:
    server = FakeOpenAIThread(chunk_size=3)
    server.start()
    yield server
    server.stop()


def configure(home: Path, fake: FakeOpenAIThread, prices: str = "") -> None:
    write_config(
        home,
        f"""
[general]
default_model = "fake/fake-model"
currency = "EUR"
[providers.fake]
base_url = "{fake.base_url}"
api_key = "sk-test"
models = ["fake-model", "other"]
timeout = 2.0
max_retries = 0
{prices}
""",
    )


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def tokens(home: Path) -> tuple[int, int]:
    rows = sqlite3.connect(home / "mschat.db").execute(
        "SELECT sum(prompt_tokens), sum(completion_tokens) FROM api_calls"
    )
    first, second = rows.fetchone()
    return int(first), int(second)


def test_users_show_and_sessions_show_print_the_cost(mschat_home: Path, fake: FakeOpenAIThread):
    configure(mschat_home, fake, '[prices."fake/fake-model"]\ninput = 1000.0\noutput = 2000.0\n')
    assert run("ask", "Say hello").exit_code == 0
    assert run("ask", "-s", "1", "Once more").exit_code == 0
    tokens_in, tokens_out = tokens(mschat_home)
    expected = (tokens_in * 1000 + tokens_out * 2000) / 1e6

    shown = run("users", "show", "--json")
    spending = json.loads(shown.stdout)["spending"]
    assert spending["cost"] == pytest.approx(expected)
    assert spending["currency"] == "EUR" and spending["requests"] == 2
    assert (spending["tokens_in"], spending["tokens_out"]) == (tokens_in, tokens_out)
    text = run("users", "show", "--since", "1h").stdout
    assert f"cost: {expected:.4f} EUR (2 requests" in text and "since 1h" in text
    # a period after every answer costs nothing, known
    assert "cost: 0.00 EUR (0 requests" in run("users", "show", "--since", "2999-01-01").stdout
    later = json.loads(run("users", "show", "--since", "2999-01-01", "--json").stdout)
    assert later["spending"]["cost"] == 0

    session = json.loads(run("sessions", "show", "1", "--json").stdout)
    assert session["spending"]["cost"] == pytest.approx(expected)
    answers = [m for m in session["messages"] if m["role"] == "assistant"]
    assert sum(m["cost"] for m in answers) == pytest.approx(expected)  # each answer's cost
    for m in answers:
        assert m["cost"] == pytest.approx((m["tokens_in"] * 1000 + m["tokens_out"] * 2000) / 1e6)
    assert all("cost" not in m for m in session["messages"] if m["role"] == "user")
    assert f"Cost: {expected:.4f} EUR" in run("sessions", "show", "1").stdout


def test_an_unpriced_model_costs_nothing_known(mschat_home: Path, fake: FakeOpenAIThread):
    configure(mschat_home, fake)
    assert run("ask", "Hi").exit_code == 0
    assert "cost: — (1 requests" in run("users", "show").stdout
    assert json.loads(run("users", "show", "--json").stdout)["spending"]["cost"] is None
    assert "Cost: — (1 requests" in run("sessions", "show", "1").stdout
    [answer] = json.loads(run("sessions", "show", "1", "--json").stdout)["messages"][1:]
    assert answer["cost"] is None


def test_a_bad_period_is_one_clear_line(mschat_home: Path, fake: FakeOpenAIThread):
    configure(mschat_home, fake)
    result = run("users", "show", "--since", "last tuesday")
    assert result.exit_code != 0
    assert "--since must be a period like 7d" in result.stderr
    assert "Traceback" not in result.output


def test_prices_from_the_environment(mschat_home: Path, fake: FakeOpenAIThread, monkeypatch):
    configure(mschat_home, fake)
    monkeypatch.setenv("MSCHAT_PRICES", '{"fake/fake-model": {"input": 1e6, "output": 0}}')
    assert run("ask", "Hi").exit_code == 0
    tokens_in, _ = tokens(mschat_home)
    assert json.loads(run("users", "show", "--json").stdout)["spending"]["cost"] == tokens_in
    monkeypatch.setenv("MSCHAT_PRICES", '{"fake-model": {"input": 1}}')
    result = run("users", "show")
    assert result.exit_code != 0 and "MSCHAT_PRICES" in result.stderr


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('[prices."gpt-4o"]\ninput = 1\noutput = 2\n', 'must be named "provider/model"'),
        ('[prices."a/b"]\ninput = 1\n', "must be a table with output"),
        ('[prices."a/b"]\ninput = -1\noutput = 2\n', "each a number ≥ 0"),
        ('[prices."a/b"]\ninput = 1\noutput = 2\nfee = 3\n', "not 'fee'"),
        ('[prices]\n"a/b" = 3\n', "must be a table like"),
    ],
)
def test_a_bad_price_is_one_line_naming_it(mschat_home: Path, table: str, error: str):
    write_config(mschat_home, table)
    result = run("config", "show")
    assert result.exit_code != 0 and error in result.stderr and "Traceback" not in result.output
