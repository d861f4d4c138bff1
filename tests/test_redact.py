"""Secrets inside URLs and texts never show."""

from __future__ import annotations

from mschat.redact import redact_text, redact_url


def test_user_info_and_secret_query_values_are_masked():
    url = "https://alice:s3cret-pw@llm.example/v1?api_key=SECRETKEY123&x=1"
    shown = redact_url(url)
    assert "s3cret-pw" not in shown and "alice" not in shown and "SECRETKEY123" not in shown
    assert shown.startswith("https://****@llm.example/v1?")
    assert "x=1" in shown


def test_a_plain_url_is_unchanged():
    assert redact_url("http://127.0.0.1:11434/v1") == "http://127.0.0.1:11434/v1"


def test_texts_lose_urls_tokens_and_given_secrets():
    text = (
        "cannot reach https://u:pw123456@host/v1/chat?token=abcdef: "
        "sent Authorization: Bearer sk-abcdefghijklmnop with key sk-literal-key"
    )
    shown = redact_text(text, ["sk-literal-key", None, ""])
    for secret in ("pw123456", "abcdef", "sk-abcdefghijklmnop", "sk-literal-key"):
        assert secret not in shown
    assert "host/v1/chat" in shown
