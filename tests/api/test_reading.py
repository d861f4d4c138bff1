"""Reading never writes: GETs (and refused changes) by a name no user has yet store nothing."""

from __future__ import annotations

from mschat.core.services import Services
from tests.api.conftest import LiveApi


def counts(services: Services) -> dict[str, int]:
    """Rows of every table a request could add to."""
    conn = services.store.conn
    tables = ["users", "sessions", "messages", "api_calls", "interactions", "idempotency_keys"]
    return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}


async def test_gets_by_unknown_users_store_nothing(api: LiveApi):
    client = api.client
    owner = await client.post("/chat", json={"message": "mine", "user": "owner"})
    private_id = owner.json()["session_id"]
    shared = await client.post("/users/owner/sessions", json={"title": "Shared", "public": True})
    public_id = shared.json()["id"]
    before = counts(api.services)

    # the user's settings: 404, named as the user
    user = await client.get("/users/ghost")
    assert user.status_code == 404
    error = user.json()["error"]
    assert error["param"] == "user" and error["type"] == "not_found_error"
    assert "ghost" in error["message"]
    # listings: empty (public sessions when asked, as for anyone)
    listing = await client.get("/users/ghost/sessions")
    assert listing.status_code == 200
    assert listing.json() == {
        "sessions": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
        "current_session_id": None,
    }
    public = (await client.get("/users/ghost/sessions", params={"include_public": "1"})).json()
    assert [s["id"] for s in public["sessions"]] == [public_id] and public["total"] == 1
    # a session: public ones are readable, private ones are not
    seen = await client.get(f"/sessions/{public_id}", params={"user": "ghost"})
    assert seen.status_code == 200 and seen.json()["session"]["title"] == "Shared"
    hidden = await client.get(f"/sessions/{private_id}", params={"user": "ghost"})
    assert hidden.status_code == 403
    missing = await client.get("/sessions/999", params={"user": "ghost"})
    assert missing.status_code == 404
    # refused changes create no one either
    rename = await client.patch(f"/sessions/{public_id}", json={"user": "ghost", "title": "x"})
    assert rename.status_code == 403
    remove = await client.delete(f"/sessions/{private_id}", params={"user": "ghost"})
    assert remove.status_code == 403

    assert counts(api.services) == before
    assert await api.services.manager.find_existing_user("api", "ghost") is None


async def test_known_users_read_as_before(api: LiveApi):
    asked = (await api.client.post("/chat", json={"message": "hello", "user": "kim"})).json()
    user = (await api.client.get("/users/kim")).json()
    assert user["user"] == "kim" and user["current_session_id"] == asked["session_id"]
    listing = (await api.client.get("/users/kim/sessions")).json()
    assert [s["id"] for s in listing["sessions"]] == [asked["session_id"]]
