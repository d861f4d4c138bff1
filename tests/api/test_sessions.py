"""Sessions and user settings over REST, with the core's creator and visibility rules."""

from __future__ import annotations

from tests.api.conftest import LiveApi


async def _ask(api: LiveApi, user: str, message: str, **extra) -> dict:
    response = await api.client.post("/chat", json={"message": message, "user": user, **extra})
    assert response.status_code == 200, response.text
    return response.json()


async def test_list_create_read_paged_patch_delete(api: LiveApi):
    client = api.client
    created = await client.post(
        "/users/ann/sessions",
        json={"title": "Planning", "system_msg": "Be brief.", "current": True},
    )
    assert created.status_code == 201
    session = created.json()
    assert session["title"] == "Planning" and session["public"] is False
    assert session["origin"] == "api" and session["model"] == "fake/fake-model"
    for n in range(3):
        await _ask(api, "ann", f"q{n}")  # current session: all three land in it
    listing = (await client.get("/users/ann/sessions")).json()
    assert listing["total"] == 1 and listing["current_session_id"] == session["id"]
    assert listing["sessions"][0]["message_count"] == 6

    page = (
        await client.get(f"/sessions/{session['id']}", params={"user": "ann", "limit": 4})
    ).json()
    assert page["session"]["system_msg"] == "Be brief."
    assert [m["content"] for m in page["messages"]] == ["q1", "Echo: q1", "q2", "Echo: q2"]
    assert page["has_more"] is True
    older = (
        await client.get(
            f"/sessions/{session['id']}",
            params={"user": "ann", "limit": 4, "before": page["next_before"]},
        )
    ).json()
    assert [m["content"] for m in older["messages"]] == ["q0", "Echo: q0"]
    assert older["has_more"] is False and older["next_before"] is None
    assert older["messages"][0]["author"] == "ann" and older["messages"][1]["role"] == "assistant"

    patched = await client.patch(
        f"/sessions/{session['id']}",
        json={
            "user": "ann",
            "title": "Renamed",
            "public": True,
            "model": "other",
            "system_msg": None,
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["title"] == "Renamed" and body["public"] is True
    assert body["model"] == "fake/other" and body["system_msg"] is None

    deleted = await client.delete(f"/sessions/{session['id']}", params={"user": "ann"})
    assert deleted.status_code == 200 and deleted.json() == {"deleted": True, "id": session["id"]}
    gone = await client.get(f"/sessions/{session['id']}", params={"user": "ann"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_refusals_private_session_and_non_creator(api: LiveApi):
    client = api.client
    mine = await _ask(api, "owner", "secret plans")
    sid = mine["session_id"]
    # another user cannot read, rename, or delete a private session
    peek = await client.get(f"/sessions/{sid}", params={"user": "intruder"})
    assert peek.status_code == 403 and peek.json()["error"]["type"] == "permission_error"
    rename = await client.patch(f"/sessions/{sid}", json={"user": "intruder", "title": "mine"})
    assert rename.status_code == 403
    remove = await client.delete(f"/sessions/{sid}", params={"user": "intruder"})
    assert remove.status_code == 403
    listed = (
        await client.get("/users/intruder/sessions", params={"include_public": "true"})
    ).json()
    assert listed["sessions"] == []

    # once public it is visible and usable by others, but still only the creator edits it
    await client.patch(f"/sessions/{sid}", json={"user": "owner", "public": True})
    seen = await client.get(f"/sessions/{sid}", params={"user": "intruder"})
    assert seen.status_code == 200
    listed = (await client.get("/users/intruder/sessions", params={"include_public": "1"})).json()
    assert [s["id"] for s in listed["sessions"]] == [sid]
    rename = await client.patch(f"/sessions/{sid}", json={"user": "intruder", "title": "mine"})
    assert rename.status_code == 403
    assert "creator" in rename.json()["error"]["message"]
    joined = await _ask(api, "intruder", "hello all", session=sid)
    assert joined["session_id"] == sid
    session = (await client.get(f"/sessions/{sid}", params={"user": "owner"})).json()
    assert session["session"]["title"] != "mine"
    assert [m["author"] for m in session["messages"] if m["role"] == "user"] == [
        "owner",
        "intruder",
    ]


async def test_acting_user_is_required_and_consistent(api: LiveApi):
    sid = (await _ask(api, "zed", "hi"))["session_id"]
    missing = await api.client.get(f"/sessions/{sid}")
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "user"
    clash = await api.client.patch(
        f"/sessions/{sid}", params={"user": "zed"}, json={"user": "yan", "title": "x"}
    )
    assert clash.status_code == 400 and clash.json()["error"]["param"] == "user"
    via_query = await api.client.patch(
        f"/sessions/{sid}", params={"user": "zed"}, json={"title": "via query"}
    )
    assert via_query.status_code == 200 and via_query.json()["title"] == "via query"
    unknown = await api.client.patch(f"/sessions/{sid}", json={"user": "zed", "colour": "red"})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "colour"
    bad_model = await api.client.patch(f"/sessions/{sid}", json={"user": "zed", "model": "nope/x"})
    assert bad_model.status_code == 400 and bad_model.json()["error"]["param"] == "model"
    bad_id = await api.client.get("/sessions/abc", params={"user": "zed"})
    assert bad_id.status_code == 400 and bad_id.json()["error"]["param"] == "id"


async def test_user_settings_get_and_patch(api: LiveApi):
    client = api.client
    user = (await client.patch("/users/uma", json={})).json()  # a write creates the user
    assert user["user"] == "uma" and user["kind"] == "api" and user["status"] == "active"
    assert user["max_tokens"] == 600 and user["temperature"] == 0.8
    assert "admin" not in user
    patched = await client.patch(
        "/users/uma",
        json={
            "temperature": 0.2,
            "max_tokens": 50,
            "system_msg": "Pirate.",
            "attach": True,
            "show_public": True,
            "model": "fake-model",
            "name": "Uma T",
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["temperature"] == 0.2 and body["max_tokens"] == 50 and body["attach"] is True
    assert body["system_msg"] == "Pirate." and body["model"] == "fake/fake-model"
    assert body["name"] == "Uma T" and body["modified"] > user["modified"]
    provider = api.services.registry.provider("fake")
    await _ask(api, "uma", "ahoy")
    request = provider.requests[-1]  # type: ignore[attr-defined]
    assert request.temperature == 0.2 and request.max_tokens == 50

    for field, value in [
        ("temperature", 3),
        ("temperature", "hot"),
        ("max_tokens", 0),
        ("attach", "yes"),
        ("status", "sleepy"),
        ("admin", True),
        ("model", "nope/zzz"),
        ("current_session", "x"),
    ]:
        response = await client.patch("/users/uma", json={field: value})
        assert response.status_code == 400, (field, response.text)
        assert response.json()["error"]["param"] == field

    # switching the current session, and disabling oneself
    first = await _ask(api, "uma", "first")
    await _ask(api, "uma", "reset")
    switched = await client.patch("/users/uma", json={"current_session": first["session_id"]})
    assert switched.json()["current_session_id"] == first["session_id"]
    follow = await _ask(api, "uma", "follow-up")
    assert follow["session_id"] == first["session_id"]
    other = await _ask(api, "vic", "private")
    refused = await client.patch("/users/uma", json={"current_session": other["session_id"]})
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "current_session"
    disabled = await client.patch("/users/uma", json={"status": "disabled"})
    assert disabled.json()["status"] == "disabled"
    assert (await client.post("/chat", json={"message": "hi", "user": "uma"})).status_code == 403
