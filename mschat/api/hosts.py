"""Which Host headers the API answers (a DNS-rebinding web page must not reach it).

A page on ``http://evil.example:5000`` whose name the attacker then points at
127.0.0.1 talks to a loopback server as its own origin; its requests still
carry ``Host: evil.example:5000``, which names neither this machine nor a
configured host.
"""

from __future__ import annotations

import functools
import ipaddress

#: Host names allowed by ``api.allowed_hosts = ["*"]``: all (the check is off)
ANY = "*"
#: the addresses a server bound to one of these listens on are its interfaces' own
WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() in ("localhost", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str | None:
    """The name or address of a Host header: lower-case, without port or final dot.

    None when it is not a host (an empty name, a bad port, stray characters).
    """
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, port = value[1:end], value[end + 1 :]
    else:
        name = value.partition(":")[0]
        port = value[len(name) :]
    if port and not (port.startswith(":") and port[1:].isascii() and port[1:].isdigit()):
        return None
    name = name.rstrip(".")
    if not name or not all(c.isascii() and (c.isalnum() or c in "-._:") for c in name):
        return None
    return name


def _same_address(name: str, local: str) -> bool:
    """Whether a Host names the address the connection arrived at."""
    try:
        given, own = ipaddress.ip_address(name), ipaddress.ip_address(local.split("%")[0])
    except ValueError:
        return False
    if isinstance(own, ipaddress.IPv6Address) and own.ipv4_mapped is not None:
        own = own.ipv4_mapped
    return given == own


@functools.lru_cache(maxsize=256)  # a handful of distinct values per server, asked per request
def allowed_host(header: str | None, allowed: frozenset[str], local: str | None) -> bool:
    """Whether to answer a request with this Host header.

    Loopback names, the address the connection arrived at (``local``) and the
    ``allowed`` names (lower-case; ``*`` allows any) are; a request without a
    Host header (HTTP/1.0, never a browser) is too.
    """
    if header is None or ANY in allowed:
        return True
    name = host_name(header)
    if name is None:
        return False
    return (
        name in allowed or is_loopback(name) or (local is not None and _same_address(name, local))
    )


def normalise(names: list[str] | tuple[str, ...]) -> frozenset[str]:
    """``api.allowed_hosts`` (plus the bound name) as ``allowed_host`` compares them."""
    result = set()
    for raw in names:
        if raw.strip() == ANY:
            result.add(ANY)
        elif (name := host_name(raw)) is not None:
            result.add(name)
    return frozenset(result)
