"""Moderation: a question or an answer checked by a provider's ``/moderations`` model.

Off unless ``moderation.model`` is set. A flagged question is refused before any
chat request: the question stays stored (nothing a user types is lost) with the
status ``flagged``, and its reply row says why. A flagged answer is withheld: its
reply is stored as ``flagged`` with the reason and without the text, so no front
end, export or later context can show it by accident; the tokens it cost stay
recorded with its provider request. With moderation on, an answer is not shown
while it streams (it could not be withheld once shown): it arrives whole, once
checked.

A moderation endpoint that cannot be asked fails the reply with its error: an
unchecked text is never passed on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mschat.core.errors import AnswerWithheld, ConfigError, ProviderError, QuestionFlagged
from mschat.providers.base import Moderation, Moderator

if TYPE_CHECKING:
    from mschat.providers.registry import Registry


class Moderations:
    """The configured moderation model, or nothing (``enabled`` False)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        section: dict[str, Any] = getattr(registry.config, "sections", {}).get("moderation", {})
        self.model: str | None = section.get("model") or None
        self.provider_name: str | None = section.get("provider") or None

    @property
    def enabled(self) -> bool:
        """Whether questions and answers are checked."""
        return self.model is not None

    def _target(self) -> tuple[Moderator, str]:
        """The provider asked, and the model's name there."""
        assert self.model is not None
        providers = self.registry.provider_configs
        name, model = self.provider_name, self.model
        prefix, _, rest = model.partition("/")
        if name is None and rest and prefix in providers:
            name, model = prefix, rest  # "openai/omni-moderation-latest"
        if name is None:
            compatible = [p for p in providers.values() if p.type == "openai"]
            named = [p for p in compatible if p.name == "openai"]
            if not (named or compatible):
                raise ConfigError(
                    "moderation.model is set but no OpenAI-compatible provider is configured",
                    hint="set moderation.provider to a provider with a /moderations endpoint",
                )
            name = (named or compatible)[0].name
        provider = self.registry.provider(name)
        if not isinstance(provider, Moderator):
            raise ConfigError(
                f"provider '{name}' has no /moderations endpoint",
                hint="set moderation.provider to an OpenAI-compatible provider",
            )
        return provider, model

    async def verdict(self, text: str) -> Moderation:
        """The moderation model's verdict on ``text``."""
        provider, model = self._target()
        try:
            return await provider.moderate(model, text)
        except ProviderError as error:
            raise ProviderError(
                f"moderation could not check the text: {error.message}",
                kind=error.kind,
                status=error.status,
                hint=error.hint,
            ) from None

    async def check_question(self, text: str) -> None:
        """Raise QuestionFlagged when the moderation model flags ``text``."""
        found = await self.verdict(text)
        if found.flagged:
            raise QuestionFlagged(
                "your question was flagged by moderation" + _which(found) + " and not answered",
                categories=found.categories,
            )

    async def check_answer(self, text: str) -> None:
        """Raise AnswerWithheld when the moderation model flags ``text``."""
        if not text.strip():
            return
        found = await self.verdict(text)
        if found.flagged:
            raise AnswerWithheld(
                "the answer was withheld: moderation flagged it" + _which(found),
                categories=found.categories,
            )


def _which(found: Moderation) -> str:
    return f" ({', '.join(found.categories)})" if found.categories else ""
