"""``mschat ask -a FILE``: images and text files sent to the fake OpenAI server by a
real process, stdin as a file, and one line for what is refused."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAIThread, image_of

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)


@pytest.fixture
def vision_thread() -> Iterator[FakeOpenAIThread]:
    """The fake server, where only ``fake-model`` takes images."""
    with FakeOpenAIThread(
        models=["fake-model", "blind-model"], vision_models=["fake-model"]
    ) as server:
        yield server


@pytest.fixture
def env(mschat_home: Path, vision_thread: FakeOpenAIThread) -> dict[str, str]:
    write_config(
        mschat_home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{vision_thread.base_url}"\n'
        'models = ["fake-model", "blind-model"]\nvision = true\n'
        '[models."fake/blind-model"]\nvision = false\n'
        "[attachments]\nmax_bytes = 1000\n",
    )
    return {**os.environ, "MSCHAT_HOME": str(mschat_home)}


def ask(env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mschat", "ask", *args],
        input=stdin,
        env=env,
        capture_output=True,
        timeout=30,
    )


def test_an_image_and_a_file_reach_the_model(
    env: dict[str, str], vision_thread: FakeOpenAIThread, tmp_path: Path
):
    (tmp_path / "cat.png").write_bytes(PNG)
    (tmp_path / "notes.md").write_text("# plan\nship it\n")
    done = ask(env, "-a", str(tmp_path / "cat.png"), "-a", str(tmp_path / "notes.md"), "What?")
    assert done.returncode == 0, done.stderr
    content = vision_thread.requests[-1]["messages"][-1]["content"]
    assert content[0] == {
        "type": "text",
        "text": 'What?\n\n<file name="notes.md">\n# plan\nship it\n\n</file>',
    }
    assert image_of(content[1]) == ("image/png", PNG)
    assert done.stdout.decode().startswith("Echo: What?")
    assert f"[image image/png {len(PNG)} bytes]" in done.stdout.decode()


def test_stdin_is_attached_as_a_file(env: dict[str, str], vision_thread: FakeOpenAIThread):
    done = ask(env, "-a", "-", "Describe it", stdin=PNG)
    assert done.returncode == 0, done.stderr
    content = vision_thread.requests[-1]["messages"][-1]["content"]
    assert content[0]["text"] == "Describe it"  # stdin is the file, not more prompt
    assert content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(
        PNG
    ).decode("ascii")


@pytest.mark.parametrize(
    ("setup", "args", "line"),
    [
        ({}, ["-a", "missing.png"], "Error: cannot attach missing.png: No such file or directory"),
        (
            {"big.txt": b"x" * 2000},
            ["-a", "big.txt"],
            "Error: big.txt is larger than 1000 bytes, the most a file may be "
            "(attachments.max_bytes)",
        ),
        (
            {"cat.png": PNG},
            ["-m", "fake/blind-model", "-a", "cat.png"],
            "Error: model fake/blind-model cannot see images (cat.png)",
        ),
        (
            {"a.bin": b"\x00\xff"},
            ["-a", "a.bin"],
            "Error: a.bin is neither an image (PNG, JPEG, WebP, GIF) nor UTF-8 text;",
        ),
    ],
)
def test_a_refused_file_is_one_line_and_nothing_is_asked(
    env: dict[str, str], vision_thread: FakeOpenAIThread, tmp_path: Path, setup, args, line
):
    for name, data in setup.items():
        (tmp_path / name).write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "mschat", "ask", *args, "Look"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode != 0
    err = done.stderr.decode()
    assert err.startswith(line), err
    assert "Traceback" not in err
    assert vision_thread.requests == []
