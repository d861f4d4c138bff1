"""Files given by URL (an API caller's image URL, a Discord attachment): fetched with
limits, never from the server's own network unless the configuration allows it.

A URL is outside input: it could point at the machine's own services or the
cloud's metadata address (server-side request forgery). So only http(s) is
fetched; every address the host name resolves to must be public (unless
``attachments.fetch_private``), and the connection goes to the address that was
checked, so a name cannot resolve to another one in between; a redirect is
checked the same way; the body stops one byte past the size limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import unquote, urlsplit

from mschat.core.errors import InvalidInput

#: redirects followed (each checked like the first URL)
MAX_REDIRECTS = 3
#: seconds for the whole fetch of one file
TIMEOUT = 20.0


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_global


async def _address(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: the first the name resolves to, all of them checked."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidInput(f"cannot fetch from {host}: {exc.strerror or exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise InvalidInput(f"cannot fetch from {host}: it has no address")
    if not allow_private and not all(_public(a) for a in addresses):
        raise InvalidInput(
            f"{host} is a private or local address; mschat fetches files only from the "
            "internet (attachments.fetch_private allows others)"
        )
    return addresses[0]


def _name(url: str, disposition: str | None) -> str:
    """A file's name: the response's Content-Disposition filename, else the URL's path."""
    if disposition:
        for piece in disposition.split(";"):
            key, _, value = piece.strip().partition("=")
            if key.lower() == "filename" and value.strip('"'):
                return value.strip('"')
    path = unquote(urlsplit(url).path)
    return path.rsplit("/", 1)[-1] or "file"


async def fetch_file(url: str, *, max_bytes: int, allow_private: bool = False) -> tuple[str, bytes]:
    """The name and content of the file at ``url`` (read up to one byte past
    ``max_bytes``: a longer file is then refused by ``attachments.prepare``)."""
    from mschat.providers._httpx import httpx

    try:
        async with asyncio.timeout(TIMEOUT):
            for _ in range(MAX_REDIRECTS + 1):
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise InvalidInput(f"cannot fetch {url[:200]!r}: only http and https URLs")
                port = parts.port or (443 if parts.scheme == "https" else 80)
                address = await _address(parts.hostname, port, allow_private)
                # connect to the checked address; TLS and Host still name the host
                transport = httpx.AsyncHTTPTransport(retries=0)
                async with httpx.AsyncClient(
                    transport=transport, follow_redirects=False, trust_env=False
                ) as client:
                    request = client.build_request(
                        "GET", url, extensions={"sni_hostname": parts.hostname}
                    )
                    request.url = request.url.copy_with(host=address)
                    request.headers["Host"] = parts.netloc.rpartition("@")[2]
                    response = await client.send(request, stream=True)
                    try:
                        if response.is_redirect and "location" in response.headers:
                            url = str(httpx.URL(url).join(response.headers["location"]))
                            continue
                        if response.status_code != 200:
                            raise InvalidInput(
                                f"cannot fetch {parts.hostname}{parts.path[:100]}: "
                                f"HTTP {response.status_code}"
                            )
                        data = bytearray()
                        async for chunk in response.aiter_bytes():
                            data += chunk
                            if len(data) > max_bytes:
                                break
                        name = _name(url, response.headers.get("content-disposition"))
                        return name, bytes(data[: max_bytes + 1])
                    finally:
                        await response.aclose()
            raise InvalidInput(f"cannot fetch {url[:200]!r}: more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise InvalidInput(f"cannot fetch {url[:200]!r}: no answer within {TIMEOUT:g} s") from None
    except httpx.HTTPError as exc:
        raise InvalidInput(f"cannot fetch {url[:200]!r}: {type(exc).__name__}") from None
