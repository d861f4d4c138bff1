"""``Toolbox``: the tools of one process, and each question's tool loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mschat.core.tools.loop import Approve, Limits, ToolLoop
from mschat.core.tools.servers import ServerPool

if TYPE_CHECKING:
    from mschat.config import Config
    from mschat.core.answer.turns import Runner
    from mschat.core.models import User
    from mschat.store.contract import Store


class Toolbox:
    """The configured MCP servers (started on first need) and the ``[tools]`` limits."""

    def __init__(self, config: Config, targets: dict[str, Any] | None = None) -> None:
        self.config = config
        self.pool = ServerPool(config.mcp_servers, targets)

    def limits(self) -> Limits:
        """``[tools]`` as in effect now."""
        return Limits(
            max_rounds=self.config.get("tools", "max_rounds"),
            max_result_chars=self.config.get("tools", "max_result_chars"),
        )

    async def loop_for(
        self,
        *,
        user: User,
        takes_tools: bool,
        approve: Approve | None,
        store: Store,
        run: Runner,
        reply_id: int,
    ) -> ToolLoop | None:
        """The tool loop of one answer, or None: the model takes no tools, no server is
        enabled, or none offers a tool. Only then are the servers started."""
        if not takes_tools or not self.pool:
            return None
        offered = await self.pool.offered()
        if not offered:
            return None
        return ToolLoop(
            self.pool,
            offered,
            user=user,
            approve=approve,
            store=store,
            run=run,
            reply_id=reply_id,
            limits=self.limits(),
        )

    async def aclose(self) -> None:
        """Stop the servers that were started."""
        await self.pool.aclose()
