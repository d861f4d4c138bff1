"""Shared fixtures: an isolated MSCHAT_HOME, a scripted provider, built services, and the
database backends (SQLite, and PostgreSQL from a throwaway cluster).

The tests of ``tests/store`` and ``tests/core`` that use a database (through the
``backend``, ``db_url`` or ``services`` fixtures) run once per backend; a test
elsewhere opts in with ``@pytest.mark.backends``, and one that checks what only
SQLite has (its file, WAL, modes) is marked ``sqlite_only``. A PostgreSQL test
that cannot run is skipped, and fails in CI (``CI=true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.fakes.fake_openai import FakeOpenAIThread
from tests.fakes.scripted_provider import ScriptedProvider
from tests.pg import Cluster, find_binaries

_PROVIDER_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DISCORD_TOKEN", "MSCHAT_CONFIG", "MSCHAT_DB")


async def eventually(condition: Any, timeout: float = 10.0) -> Any:
    """Poll an async or sync condition until it is truthy (never a bare sleep)."""
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def mschat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own MSCHAT_HOME and no provider settings from outside."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("MSCHAT_") or name in _PROVIDER_ENV:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MSCHAT_HOME", str(home))
    monkeypatch.setenv("MSCHAT_GENERAL_USER_NAME", "tester")
    yield home


@pytest.fixture
def provider() -> ScriptedProvider:
    """The scripted in-process provider, registered as 'fake'."""
    return ScriptedProvider("fake")


def write_config(home: Path, text: str) -> Path:
    """Write config.toml into MSCHAT_HOME."""
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def fake_model_config(home: Path, base_url: str, extra: str = "") -> Path:
    """A config.toml whose default model, fake/fake-model, is served at ``base_url``.

    ``extra`` adds keys to ``[providers.fake]``.
    """
    return write_config(
        home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{base_url}"\nmodels = ["fake-model"]\n{extra}',
    )


@pytest.fixture
def fake_thread() -> Iterator[FakeOpenAIThread]:
    """The fake OpenAI-compatible server on its own thread, for tests of real processes."""
    with FakeOpenAIThread(chunk_size=5) as server:
        yield server


@contextlib.asynccontextmanager
async def scripted_services(
    home: Path, provider: ScriptedProvider, db_url: str, config: str
) -> AsyncIterator[Services]:
    """Services over ``db_url`` with ``config`` as config.toml and the scripted provider
    serving the provider named ``fake``."""
    write_config(home, config)
    built = build_services(load_config(db=db_url), providers={"fake": provider})
    try:
        yield built
    finally:
        await built.aclose()


def vision_config(extra: str = "") -> str:
    """config.toml text: the scripted provider's ``eyes`` model sees images."""
    return (
        '[general]\ndefault_model = "fake/eyes"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["eyes", "blind"]\n'
        'vision = true\n[models."fake/blind"]\nvision = false\n' + extra
    )


@pytest.fixture
async def services(
    mschat_home: Path, provider: ScriptedProvider, db_url: str
) -> AsyncIterator[Services]:
    """Services over a fresh database with the scripted provider as default model."""
    config = (
        '[general]\ndefault_model = "fake/fake-model"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model", "other"]\n'
        '[context_windows]\n"fake-model" = 4096\n'
    )
    async with scripted_services(mschat_home, provider, db_url, config) as built:
        yield built


# ---- database backends --------------------------------------------------------

BACKENDS = ("sqlite", "postgresql")
#: the test directories whose database tests all run on every backend
_EVERY_BACKEND = ("store", "core")
#: the migrated database every test's PostgreSQL database is a copy of
PG_TEMPLATE = "mschat_template"
_databases = itertools.count(1)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the database tests of tests/store and tests/core (and opted-in ones) per backend."""
    if "backend" not in metafunc.fixturenames:
        return
    markers = {marker.name for marker in metafunc.definition.iter_markers()}
    if "sqlite_only" in markers:
        return
    folder = Path(str(metafunc.definition.fspath)).parent.name
    if "backends" in markers or folder in _EVERY_BACKEND:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


def unavailable(reason: str) -> None:
    """Skip a PostgreSQL test that cannot run here; in CI, fail it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests must run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def pg_binaries() -> Path:
    """The machine's PostgreSQL binaries, with psycopg importable; else skip (CI: fail)."""
    binaries = find_binaries()
    if binaries is None:
        unavailable("PostgreSQL is not installed (no pg_ctl; apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'mschat[postgres]')")
    assert binaries is not None
    return binaries


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL server of the machine's binaries, for the whole test session.

    It holds a migrated template database; each test gets a copy (``pg_url``).
    """
    cluster = Cluster(pg_binaries())
    try:
        cluster.start()
        cluster.execute(f"CREATE DATABASE {PG_TEMPLATE}")
        from mschat.store import open_store

        open_store(cluster.url(PG_TEMPLATE)).close()
    except Exception as exc:
        cluster.stop()
        unavailable(f"cannot start PostgreSQL: {exc}")
    yield cluster
    cluster.stop()


def new_pg_database(cluster: Cluster, template: str = PG_TEMPLATE) -> str:
    """A new database of ``cluster``, copied from ``template``; returns its name."""
    name = f"test_{os.getpid()}_{next(_databases)}"
    cluster.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database, dropped after the test."""
    name = new_pg_database(pg_cluster)
    yield pg_cluster.url(name)
    pg_cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_blank_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database (no mschat schema yet)."""
    name = new_pg_database(pg_cluster, "template0")
    yield pg_cluster.url(name)
    pg_cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test: "sqlite" unless parametrised."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, mschat_home: Path) -> str:
    """Where this test's fresh database is: MSCHAT_HOME's file, or a PostgreSQL URL."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(mschat_home / "mschat.db")


#: make_database(backend, name="db", migrated=False) -> a path or URL
MakeDatabase = Callable[..., str]


@pytest.fixture
def make_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeDatabase]:
    """A factory of fresh databases of either backend: ``make_database(backend, name)``.

    A SQLite database is a path with no file yet (the first open makes it); a
    PostgreSQL one is blank (no tables), or with ``migrated=True`` a copy of the
    session's migrated template.
    """
    made: list[str] = []

    def make(backend: str, name: str = "db", *, migrated: bool = False) -> str:
        if backend == "sqlite":
            return str(tmp_path / f"{name}.db")
        cluster = request.getfixturevalue("pg_cluster")
        database = new_pg_database(cluster, PG_TEMPLATE if migrated else "template0")
        made.append(database)
        return str(cluster.url(database))

    yield make
    for database in made:
        request.getfixturevalue("pg_cluster").execute(
            f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
        )
