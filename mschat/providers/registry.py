"""Model resolution: names and aliases to (provider, model), and provider creation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mschat.config import Config, ProviderConfig
from mschat.core.errors import NotFound, ProviderError
from mschat.providers.base import ModelInfo, Provider

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


class Registry:
    """Resolves model names and hands out (cached) provider instances."""

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

    # ---- names --------------------------------------------------------------

    def default_model_name(self) -> str:
        """The model used when nothing else is chosen."""
        if self.config.default_model:
            return self.config.default_model
        if not self.provider_configs:
            raise ProviderError(
                "no model provider is configured", kind="not_configured", hint=NO_PROVIDER_HINT
            )
        provider = next(iter(self.provider_configs.values()))
        if provider.models:
            return f"{provider.name}/{provider.models[0]}"
        if provider.type == "openai" and (provider.base_url or "").startswith(
            "https://api.openai.com"
        ):
            return f"{provider.name}/gpt-4o-mini"
        if provider.type == "local":
            from mschat.providers.local import local_model_name

            return f"{provider.name}/{local_model_name(provider)}"
        raise ProviderError(
            f"no default model for provider {provider.name!r}",
            kind="not_configured",
            hint=f"set general.default_model or providers.{provider.name}.models "
            "in the config file, or pass --model",
        )

    def resolve(self, name: str | None) -> ResolvedModel:
        """Resolve an alias, ``provider/model`` or bare model name."""
        name = (name or "").strip() or self.default_model_name()
        seen = set()
        while name in self.config.aliases and name not in seen:
            seen.add(name)
            name = self.config.aliases[name]
        provider_name, _, model = name.partition("/")
        if model and provider_name in self.provider_configs:
            return self._resolved(provider_name, model)
        # a bare name (which may itself contain '/', e.g. "meta/llama")
        for provider in self.provider_configs.values():
            if name in provider.models:
                return self._resolved(provider.name, name)
        if not self.provider_configs:
            raise ProviderError(
                "no model provider is configured", kind="not_configured", hint=NO_PROVIDER_HINT
            )
        open_providers = [p for p in self.provider_configs.values() if not p.models]
        if len(open_providers) >= 1 and not model:
            return self._resolved(open_providers[0].name, name)
        raise NotFound(
            f"unknown model {name!r}",
            hint="list models with `mschat models`; use provider/model or an alias",
        )

    def _resolved(self, provider: str, model: str) -> ResolvedModel:
        return ResolvedModel(provider, model, self.context_window(provider, model))

    def context_window(self, provider: str, model: str) -> int:
        """The model's context window: config, provider, known families, default."""
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
        instance = self._instances.get(provider)
        known = getattr(instance, "context_window", None)
        if isinstance(known, int) and known > 0:
            return known
        lowered = model.lower()
        for prefix, size in KNOWN_CONTEXT_WINDOWS:
            if lowered.startswith(prefix):
                return size
        return int(self.config.get("defaults", "context_window"))

    def configured_models(self) -> list[ModelInfo]:
        """Models named in the config (plus aliases), without asking any server."""
        return [
            self.model_info(provider, model)
            for provider in self.provider_configs.values()
            for model in provider.models
        ]

    def model_info(
        self, provider: ProviderConfig, model: str, extra: dict[str, str] | None = None
    ) -> ModelInfo:
        """What ``mschat models`` and the front ends show of one model."""
        return ModelInfo(
            name=f"{provider.name}/{model}",
            provider=provider.name,
            model=model,
            context_window=self.context_window(provider.name, model),
            source=provider.source,
            extra=extra or {},
        )

    def bundled_notice(self) -> str:
        """The stderr notice shown once when the bundled offline model is the default."""
        from mschat.providers.local import bundled_notice

        return bundled_notice(self.default_model_name(), self.config.file)

    def extra_models(self) -> list[ModelInfo]:
        """Models not listed in the config: local providers named after their GGUF file."""
        from mschat.providers.local import unlisted_local_models

        return unlisted_local_models(self)

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
