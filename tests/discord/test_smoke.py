from tests.discord.conftest import Harness
from tests.fakes.fake_discord import QA_CHANNEL_ID


async def test_connects_and_answers(harness: Harness) -> None:
    fake = harness.fake
    await harness.discord_user(1, status="new")
    msg = await fake.send_message(1, "hello there")
    await fake.wait_until(lambda: "👌" in fake.reactions.get(int(msg["id"]), []))
    replies = fake.replies_to(msg["id"])
    assert replies and replies[0]["content"] == "Echo: hello there"
    print(fake.commands)
