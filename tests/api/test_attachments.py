"""Files over the API: /chat ``attachments`` (base64 or a URL mschat fetches) and /v1
image parts, through the real provider to the fake OpenAI server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.api.conftest import LiveApi, live_api
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAI, image_of

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def _config(home: Path, base_url: str, fetch_private: bool) -> None:
    write_config(
        home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{base_url}"\nmodels = ["fake-model"]\n'
        "max_retries = 0\nvision = true\n"
        f"[attachments]\nmax_bytes = 4096\nfetch_private = {str(fetch_private).lower()}\n",
    )


@pytest.fixture
async def files_server() -> AsyncIterator[str]:
    """A loopback web server with a PNG, a redirect to it and a large file."""
    app = web.Application()

    async def png(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/cat.png")

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(100):  # 800 KB, refused after the first 4 KB
            await response.write(b"x" * 8192)
        return response

    app.router.add_get("/cat.png", png)
    app.router.add_get("/moved", moved)
    app.router.add_get("/huge.txt", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def _api(home: Path, fake: FakeOpenAI, fetch_private: bool) -> AsyncIterator[LiveApi]:
    _config(home, fake.base_url, fetch_private)
    services: Services = build_services(load_config())
    try:
        async for live in live_api(services, token=""):
            yield live
    finally:
        await services.aclose()


@pytest.fixture
async def api(mschat_home: Path, fake_openai: FakeOpenAI) -> AsyncIterator[LiveApi]:
    """The API whose files may come from loopback URLs (the test's own server)."""
    async for live in _api(mschat_home, fake_openai, True):
        yield live


@pytest.fixture
async def guarded(mschat_home: Path, fake_openai: FakeOpenAI) -> AsyncIterator[LiveApi]:
    """The API with the default: no files from private or local addresses."""
    async for live in _api(mschat_home, fake_openai, False):
        yield live


def _sent_images(fake: FakeOpenAI) -> list[tuple[str, bytes] | None]:
    content = fake.requests[-1]["messages"][-1]["content"]
    return [image_of(part) for part in content if part.get("type") == "image_url"]


async def test_chat_takes_base64_files_and_urls(
    api: LiveApi, fake_openai: FakeOpenAI, files_server: str
):
    response = await api.client.post(
        "/chat",
        json={
            "user": "alice",
            "message": "Compare them",
            "attachments": [
                {"name": "notes.md", "data": base64.b64encode(b"# plan\n").decode()},
                {"url": f"{files_server}/moved"},
            ],
        },
    )
    assert response.status_code == 200, response.text
    assert _sent_images(fake_openai) == [("image/png", PNG)]
    text = fake_openai.requests[-1]["messages"][-1]["content"][0]["text"]
    assert '<file name="notes.md">\n# plan\n\n</file>' in text
    page = await api.client.get(f"/sessions/{response.json()['session_id']}?user=alice")
    files = page.json()["messages"][0]["attachments"]
    assert [(f["name"], f["mime"], f["size"]) for f in files] == [
        ("notes.md", "text/markdown", 7),
        ("cat.png", "image/png", len(PNG)),
    ]


@pytest.mark.parametrize(
    ("attachment", "error"),
    [
        ({"name": "a", "data": "%%%"}, "data must be base64"),
        ({"name": "a"}, "an attachment needs data or url"),
        ({"url": "ftp://example.com/a.png"}, "only http and https URLs"),
        ({"url": "{server}/huge.txt"}, "huge.txt is larger than 4.0 KB"),
        ({"name": "x.bin", "data": base64.b64encode(b"\x00\x01").decode()}, "nor UTF-8 text"),
    ],
)
async def test_a_refused_file_is_a_400_and_nothing_is_asked(
    api: LiveApi, fake_openai: FakeOpenAI, files_server: str, attachment: dict, error: str
):
    attachment = {k: v.format(server=files_server) for k, v in attachment.items()}
    response = await api.client.post(
        "/chat", json={"user": "alice", "message": "Look", "attachments": [attachment]}
    )
    assert response.status_code in (400, 422), response.text
    assert error in response.text
    assert fake_openai.requests == []


async def test_files_from_local_addresses_are_refused_by_default(
    guarded: LiveApi, fake_openai: FakeOpenAI, files_server: str
):
    response = await guarded.client.post(
        "/chat",
        json={
            "user": "alice",
            "message": "Look",
            "attachments": [{"url": f"{files_server}/cat.png"}],
        },
    )
    assert response.status_code == 400
    assert "127.0.0.1 is a private or local address" in response.json()["error"]["message"]
    assert fake_openai.requests == []


async def test_v1_image_parts_go_to_the_model_in_every_turn(api: LiveApi, fake_openai: FakeOpenAI):
    response = await api.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake/fake-model",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": DATA_URL}},
                    ],
                },
                {"role": "assistant", "content": "A cat."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "And this?"},
                        {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "low"}},
                    ],
                },
            ],
        },
    )
    assert response.status_code == 200, response.text
    sent = fake_openai.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    for turn in (sent[0], sent[2]):
        assert [image_of(p) for p in turn["content"] if p["type"] == "image_url"] == [
            ("image/png", PNG)
        ]
    assert "[image image/png" in response.json()["choices"][0]["message"]["content"]
