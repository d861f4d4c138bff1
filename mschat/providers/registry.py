"""Model names: the usable models, names and aliases to (provider, model), providers.

A name is usable when mschat can see it in a list: a provider's ``models`` in
the config, the name of a ``local`` provider's GGUF file, an alias of one of
these, or, for a provider without a ``models`` list ("open"), the list its
server gives at ``GET /models`` (see :mod:`mschat.providers.discovery`). Every
other name is refused, also when an open provider's server cannot be asked: the
error then says to name its models in ``providers.NAME.models``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mschat.config import OPENAI_DEFAULT_BASE_URL, Config, ProviderConfig
from mschat.core.errors import MschatError, NotFound, ProviderError
from mschat.providers.base import ModelInfo, ModelLister, Provider

if TYPE_CHECKING:
    from mschat.providers.discovery import Served, ServedModels

log = logging.getLogger(__name__)

#: model families that see images (OpenAI's, and well-known open ones)
KNOWN_VISION = (
    "gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4-turbo", "gpt-4-vision", "gpt-5", "o1", "o3",
    "o4", "claude-3", "claude-sonnet-4", "claude-opus-4", "gemini", "llava", "bakllava",
    "llama-3.2-vision", "llama3.2-vision", "qwen2-vl", "qwen2.5-vl", "pixtral", "gemma3",
    "minicpm-v", "moondream",
)  # fmt: skip
#: names within those families that do not
KNOWN_BLIND = ("o1-mini", "o3-mini", "gpt-4o-audio", "gpt-4o-realtime", "gpt-4o-mini-tts")

# Context windows of well-known model families, used when the config says nothing.
KNOWN_CONTEXT_WINDOWS: list[tuple[str, int]] = [
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4-32k", 32_768),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-5", 400_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("llama3", 8_192),
    ("llama-3", 8_192),
    ("qwen", 32_768),
    ("mistral", 32_768),
]

#: OpenAI model families that take tool calls (``tools`` on a provider or model overrides)
TOOL_MODEL_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")

#: the default model of the official OpenAI API, known without asking it
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"

NO_PROVIDER_HINT = (
    "set OPENAI_API_KEY (and OPENAI_BASE_URL for another server), add a "
    "[providers.NAME] table to the config file, or install 'mschat[local]' "
    "for the bundled offline model"
)


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model name resolved to the provider that serves it."""

    provider: str
    model: str
    context_window: int

    @property
    def full_name(self) -> str:
        """The canonical ``provider/model`` name stored in sessions."""
        return f"{self.provider}/{self.model}"


#: (provider config, config, async_transport=...) -> Provider
ProviderFactory = Callable[..., Provider]
#: makes an httpx async transport; a long-running server passes one (see mschat.aiohttp_transport)
TransportFactory = Callable[[], Any]


def _openai_factory(
    provider: ProviderConfig, config: Config, *, async_transport: TransportFactory | None = None
) -> Provider:
    from mschat.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(
        provider.name,
        provider.base_url or "",
        provider.resolve_key(config.env),
        timeout=provider.timeout,
        max_retries=provider.max_retries,
        api_key_env=provider.api_key_env,
        async_transport=async_transport() if async_transport else None,
    )


def _local_factory(provider: ProviderConfig, config: Config, **_: Any) -> Provider:
    try:
        from mschat.providers.local import LocalProvider  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ProviderError(
            f"provider {provider.name!r} is local but the local backend is unavailable: {exc}",
            kind="not_configured",
            hint="install 'mschat[local]'",
        ) from exc
    return LocalProvider.from_config(provider)  # type: ignore[no-any-return]


FACTORIES: dict[str, ProviderFactory] = {"openai": _openai_factory, "local": _local_factory}


def default_local_provider() -> ProviderConfig | None:
    """The bundled offline model's provider, when the local extra is installed."""
    try:
        from mschat.providers.local import bundled_provider_config  # type: ignore[import-not-found]
    except ImportError:
        return None
    return bundled_provider_config()  # type: ignore[no-any-return]


class ServerNeeded(Exception):
    """Resolving this name needs a server's model list that is not known yet (``ask=False``)."""


def _server_needed() -> Served:
    raise ServerNeeded


class Registry:
    """Resolves model names, lists the usable models and hands out provider instances."""

    def __init__(
        self,
        config: Config,
        *,
        providers: dict[str, Provider] | None = None,
        factories: dict[str, ProviderFactory] | None = None,
        allow_bundled: bool = True,
        async_transport: TransportFactory | None = None,
    ) -> None:
        self.config = config
        self._instances: dict[str, Provider] = dict(providers or {})
        self._factories = factories or FACTORIES
        self.async_transport = async_transport
        self.provider_configs: dict[str, ProviderConfig] = dict(config.providers)
        for name in self._instances:
            self.provider_configs.setdefault(name, ProviderConfig(name=name, source="injected"))
        self.using_bundled = False
        if not self.provider_configs and allow_bundled:
            bundled = default_local_provider()
            if bundled is not None:
                self.provider_configs[bundled.name] = bundled
                self.using_bundled = True
        #: why an open provider's models could not be listed, by provider (last list_models)
        self.unlisted: dict[str, str] = {}
        self._served: ServedModels | None = None
        # (state key, value, line) of notices not yet taken by a front end
        self._notices: list[tuple[str, str, str]] = []
        self._noted: set[str] = set()

    def __repr__(self) -> str:
        return f"<Registry providers={list(self.provider_configs)}>"

    # ---- which names a provider offers ---------------------------------------------

    @staticmethod
    def is_open(provider: ProviderConfig) -> bool:
        """Whether the provider's models come from its server (no ``models`` list)."""
        return provider.type == "openai" and not provider.models

    def listed(self, provider: ProviderConfig) -> list[str]:
        """The models a provider offers that mschat knows without asking a server."""
        if provider.models:
            return list(provider.models)
        if provider.type == "local":
            from mschat.providers.local import local_model_name

            return [local_model_name(provider)]
        return []

    @staticmethod
    def builtin_default(provider: ProviderConfig) -> str | None:
        """mschat's own default model of an open provider (the official OpenAI API only)."""
        url = provider.base_url or ""
        if Registry.is_open(provider) and url.rstrip("/") == OPENAI_DEFAULT_BASE_URL:
            return OPENAI_DEFAULT_MODEL
        return None

    def served(
        self,
        provider: ProviderConfig,
        *,
        refresh: bool = False,
        max_age: float | None = None,
        ask: bool = True,
    ) -> Served:
        """The models an open provider's server lists (cached; blocking when it asks).

        Raises ``ProviderError`` naming ``providers.NAME.models`` when the list
        cannot be had, and ``ServerNeeded`` when the server would be asked but
        ``ask`` is false.
        """
        from mschat.providers import discovery

        if self._served is None:
            from mschat.state import State

            self._served = discovery.ServedModels(lambda: State.of_home(self.config.env))
        instance = self.provider(provider.name)
        if not isinstance(instance, ModelLister):
            raise ProviderError(
                f"provider '{provider.name}' cannot list its models",
                kind="not_configured",
                hint=self._models_hint(provider),
            )
        age = 0.0 if refresh else discovery.MODEL_LIST_TTL if max_age is None else max_age
        try:
            fetch = instance.served_models if ask else _server_needed
            return self._served.get(provider.name, provider.base_url or "", fetch, max_age=age)
        except ProviderError as error:
            raise ProviderError(
                error.message,
                kind=error.kind,
                status=error.status,
                hint=self._models_hint(provider),
            ) from None

    @staticmethod
    def _models_hint(provider: ProviderConfig) -> str:
        env = f"MSCHAT_PROVIDERS_{provider.name.upper()}_MODELS"
        return (
            f"name its models in providers.{provider.name}.models in the config file, "
            f"or export {env}=model1,model2"
        )

    def _offers(self, provider: ProviderConfig, model: str, ask: bool) -> bool:
        """Whether ``provider`` serves ``model`` (asks an open provider's server if needed)."""
        if model in self.listed(provider) or model == self.builtin_default(provider):
            return True
        if not self.is_open(provider):
            return False
        if model in self.served(provider, ask=ask):
            return True
        # not in a list that may predate the model (pulled a minute ago): ask once more
        from mschat.providers.discovery import MISS_REFRESH_AFTER

        return model in self.served(provider, max_age=MISS_REFRESH_AFTER, ask=ask)

    # ---- names ---------------------------------------------------------------------

    def default_model_name(self, *, ask: bool = True) -> str:
        """The model used when nothing else is chosen (``ask``: see :meth:`resolve`)."""
        if self.config.default_model:
            return self.config.default_model
        if not self.provider_configs:
            raise ProviderError(
                "no model provider is configured", kind="not_configured", hint=NO_PROVIDER_HINT
            )
        provider = next(iter(self.provider_configs.values()))
        known = self.listed(provider) or [m for m in [self.builtin_default(provider)] if m]
        if known:
            return f"{provider.name}/{known[0]}"
        try:
            served = self.served(provider, ask=ask)
        except ProviderError as error:
            raise ProviderError(
                f"no model to use: {error.message}", kind="not_configured", hint=error.hint
            ) from None
        if not served:
            where = self._where(provider)
            raise ProviderError(
                f"no model to use: {where} lists no models",
                kind="not_configured",
                hint=self._models_hint(provider),
            )
        chosen = f"{provider.name}/{next(iter(served))}"
        self._note(
            f"model_notice/{provider.name}",
            chosen,
            f"mschat: no model configured; using {chosen}, the first model {self._where(provider)} "
            "lists (choose another with -m or general.default_model; `mschat models` lists them)",
        )
        return chosen

    def _where(self, provider: ProviderConfig) -> str:
        from mschat.redact import redact_url

        return f"provider '{provider.name}' at {redact_url(provider.base_url or '')}"

    def resolve(self, name: str | None, *, ask: bool = True) -> ResolvedModel:
        """Resolve an alias, ``provider/model`` or bare model name; unknown names raise.

        It may ask an open provider's server for its model list, which blocks;
        with ``ask`` false it raises ``ServerNeeded`` instead.
        """
        asked = (name or "").strip() or self.default_model_name(ask=ask)
        name = asked
        seen = set()
        while name in self.config.aliases and name not in seen:
            seen.add(name)
            name = self.config.aliases[name]
        if not self.provider_configs:
            raise ProviderError(
                "no model provider is configured", kind="not_configured", hint=NO_PROVIDER_HINT
            )
        provider_name, _, model = name.partition("/")
        provider = self.provider_configs.get(provider_name)
        if model and provider is not None:
            try:
                offered = self._offers(provider, model, ask)
            except ProviderError as error:
                raise self._unchecked(asked, error) from None
            if offered:
                return self._resolved(provider_name, model)
            raise self._unknown(asked, name, provider)
        # a bare name (which may itself contain '/', e.g. "meta/llama"): offline lists first
        for candidate in self.provider_configs.values():
            if name in self.listed(candidate) or name == self.builtin_default(candidate):
                return self._resolved(candidate.name, name)
        failures: list[ProviderError] = []
        for candidate in self.provider_configs.values():
            if not self.is_open(candidate):
                continue
            try:
                if self._offers(candidate, name, ask):
                    return self._resolved(candidate.name, name)
            except ProviderError as error:
                failures.append(error)
        if failures and len(failures) == sum(map(self.is_open, self.provider_configs.values())):
            raise self._unchecked(asked, failures[0])  # nothing could be checked: say why
        raise self._unknown(asked, name, None)

    async def resolve_async(self, name: str | None) -> ResolvedModel:
        """:meth:`resolve` for event loops: a server is asked on a worker thread."""
        try:
            return self.resolve(name, ask=False)
        except ServerNeeded:
            return await asyncio.to_thread(self.resolve, name)

    @staticmethod
    def _unchecked(asked: str, error: ProviderError) -> ProviderError:
        """The error for a name whose provider's server could not list its models."""
        return ProviderError(
            f"cannot check model {asked!r}: {error.message}", kind=error.kind, hint=error.hint
        )

    def _unknown(self, asked: str, name: str, provider: ProviderConfig | None) -> NotFound:
        """The error for a name no list has, with the closest usable names."""
        what = f"unknown model {asked!r}"
        if asked != name:
            what += f" (an alias of {name!r})"
        if provider is not None:
            what += f": provider '{provider.name}' does not offer {name.partition('/')[2]!r}"
        names = [
            f"{p.name}/{m}"
            for p in self.provider_configs.values()
            for m in [*self.listed(p), *(self._served_now(p) or {})]
        ]
        import difflib  # only on this error path: a few ms that `mschat ask` never pays

        close = difflib.get_close_matches(name, [*names, *self.config.aliases], n=3, cutoff=0.6)
        hint = "`mschat models` lists the models you can use"
        if close:
            hint = "did you mean " + " or ".join(close) + "? " + hint
        return NotFound(what, hint=hint)

    def _served_now(self, provider: ProviderConfig) -> Served | None:
        """The server's list already in memory (never asks)."""
        return self._served.peek(provider.name) if self._served else None

    def _resolved(self, provider: str, model: str) -> ResolvedModel:
        return ResolvedModel(provider, model, self.context_window(provider, model))

    def context_window(self, provider: str, model: str) -> int:
        """The model's context window: config, server, provider, known families, default."""
        windows = self.config.context_windows
        for key in (f"{provider}/{model}", model):
            if key in windows:
                return windows[key]
        provider_config = self.provider_configs.get(provider)
        if provider_config and provider_config.context_window:
            return provider_config.context_window
        if provider_config and provider_config.type == "local":
            from mschat.providers.local import local_context_window

            return local_context_window(provider_config)
        reported = (self._served_now(provider_config) or {}).get(model) if provider_config else None
        if reported:
            return reported
        instance = self._instances.get(provider)
        known = getattr(instance, "context_window", None)
        if isinstance(known, int) and known > 0:
            return known
        lowered = model.lower()
        for prefix, size in KNOWN_CONTEXT_WINDOWS:
            if lowered.startswith(prefix):
                return size
        return int(self.config.get("defaults", "context_window"))

    def vision(self, provider: str, model: str) -> bool:
        """Whether the model sees images: ``[models."…"]``, the provider, known families."""
        given = getattr(self.config, "models", {}).get(f"{provider}/{model}", {})
        if given.get("vision") is not None:
            return bool(given["vision"])
        provider_config = self.provider_configs.get(provider)
        if provider_config is not None and provider_config.vision is not None:
            return provider_config.vision
        if provider_config is not None and provider_config.type == "local":
            return False
        lowered = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" on a router
        return lowered.startswith(KNOWN_VISION) and not lowered.startswith(KNOWN_BLIND)

    # ---- the usable models -----------------------------------------------------------

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Every usable model once: configured, served, local, then aliases.

        Open providers' servers are asked off the event loop (``refresh``: even
        when a recent list is known); one that cannot be asked is left out and
        the reason kept in ``unlisted``.
        """
        served: dict[str, Served] = {}
        self.unlisted = {}
        for provider in self.provider_configs.values():
            if not self.is_open(provider):
                continue
            try:
                served[provider.name] = await asyncio.to_thread(
                    self.served, provider, refresh=refresh
                )
            except ProviderError as error:
                self.unlisted[provider.name] = str(error)
        infos: list[ModelInfo] = []
        for provider in self.provider_configs.values():
            for model in self.listed(provider):
                infos.append(self.model_info(provider, model))
            for model in served.get(provider.name, {}):
                infos.append(self.model_info(provider, model, source="server"))
            builtin = self.builtin_default(provider)
            if builtin and builtin not in served.get(provider.name, {}):
                infos.append(self.model_info(provider, builtin, source="default"))
        infos += self._alias_infos()
        try:
            default = self.resolve(None).full_name
        except MschatError:
            return infos
        chosen = self.config.default_model
        return [
            replace(info, default=True)
            if info.name == default or (info.source == "alias" and info.name == chosen)
            else info
            for info in infos
        ]

    def _alias_infos(self) -> list[ModelInfo]:
        infos = []
        for alias in self.config.aliases:
            try:
                resolved = self.resolve(alias)
            except MschatError as error:
                log.info("alias %r is not usable: %s", alias, error)
                continue
            infos.append(
                ModelInfo(
                    name=alias,
                    provider=resolved.provider,
                    model=resolved.model,
                    context_window=resolved.context_window,
                    source="alias",
                    target=resolved.full_name,
                )
            )
        return infos

    def model_info(
        self,
        provider: ProviderConfig,
        model: str,
        extra: dict[str, str] | None = None,
        *,
        source: str | None = None,
    ) -> ModelInfo:
        """What the model pickers show of one model of ``provider``."""
        if source is None:
            source = "config"
            if provider.type == "local":
                source = "bundled" if provider.source == "bundled" else "local"
        if provider.type == "local" and extra is None:
            extra = {"path": provider.path or "(bundled)"}
        return ModelInfo(
            name=f"{provider.name}/{model}",
            provider=provider.name,
            model=model,
            context_window=self.context_window(provider.name, model),
            source=source,
            extra=extra or {},
        )

    # ---- notices for the front ends -----------------------------------------------------

    def bundled_notice(self) -> str:
        """The stderr notice shown once when the bundled offline model is the default."""
        from mschat.providers.local import bundled_notice

        return bundled_notice(self.default_model_name(), self.config.file)

    def _note(self, key: str, value: str, line: str) -> None:
        """Queue ``line`` unless this MSCHAT_HOME was told ``value`` under ``key`` already."""
        if key in self._noted:
            return
        self._noted.add(key)
        from mschat.state import State

        if State.of_home(self.config.env).get(key) != value:
            self._notices.append((key, value, line))

    def take_notices(self) -> list[str]:
        """Lines for stderr (each shown once per MSCHAT_HOME), remembered as shown."""
        from mschat.state import State

        taken, self._notices = self._notices, []
        state = State.of_home(self.config.env)
        for key, value, _ in taken:
            state.set(key, value)
        return [line for _, _, line in taken]

    def takes_tools(self, provider: str, model: str) -> bool:
        """Whether ``provider/model`` takes tool calls: ``[models."provider/model"]``
        ``tools``, else its provider's ``tools``, else a well-known OpenAI family
        (the local llama.cpp provider takes none)."""
        declared = self.config.models.get(f"{provider}/{model}", {}).get("tools")
        if declared is not None:
            return bool(declared)
        config = self.provider_configs.get(provider)
        if config is None or config.type == "local":
            return False
        if config.tools is not None:
            return config.tools
        return model.rsplit("/", 1)[-1].lower().startswith(TOOL_MODEL_PREFIXES)

    # ---- instances ----------------------------------------------------------

    def provider(self, name: str) -> Provider:
        """The provider instance called ``name`` (created on first use)."""
        if name not in self._instances:
            config = self.provider_configs.get(name)
            if config is None:
                raise NotFound(
                    f"unknown provider {name!r}", hint="list models with `mschat models`"
                )
            factory = self._factories.get(config.type)
            if factory is None:
                raise ProviderError(
                    f"provider type {config.type!r} is not available", kind="not_configured"
                )
            self._instances[name] = factory(
                config, self.config, async_transport=self.async_transport
            )
        return self._instances[name]

    async def aclose(self) -> None:
        """Close every provider that was created."""
        for instance in self._instances.values():
            await instance.aclose()
        self._instances.clear()
