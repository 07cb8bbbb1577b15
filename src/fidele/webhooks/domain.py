"""Where outgoing webhooks may go: public http(s) addresses only, unless the operator allows
private ones (``FIDELE_WEBHOOKS_ALLOW_PRIVATE``, on in development).

An endpoint URL is a merchant's input that fidele's server then POSTs to, signed: left open it
would let any merchant reach the server's loopback, the cloud metadata service
(169.254.169.254) or the private network (server-side request forgery). The URL is checked at
registration and again at each delivery, after DNS resolution, and the delivery connects to the
address that was checked (the name only goes in the Host header and TLS SNI), so a name that
resolves to a public address when registered and to 127.0.0.1 later (DNS rebinding) is refused
too."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fidele.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class UnsafeWebhookUrl(InvalidInput):
    code = "unsafe_webhook_url"


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: IPAddress) -> bool:
    """False for loopback, private, link-local, shared (CGNAT), multicast, reserved and
    unspecified addresses, also written as IPv4 inside IPv6 (``::ffff:127.0.0.1``)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or _nat64(address)
        if inner is not None:
            return is_public_address(inner)
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL: ``url`` names the checked address; ``host`` goes in the Host header and,
    over https, in the TLS SNI and certificate check."""

    url: str
    host: str
    extensions: dict[str, Any] = field(default_factory=dict)


def check_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> Target:
    """``url`` pinned to one of its addresses, every one of them checked; refused (422 naming
    ``url``) when it is not http(s), does not resolve, or reaches a non-public address that
    ``allow_private`` does not allow."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookUrl("the URL must be http(s) with a host", field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = [
            ipaddress.ip_address(a.split("%")[0])
            for a in (resolver or resolve)(parts.hostname, port)
        ]
    except (OSError, UnicodeError, ValueError) as exc:
        raise UnsafeWebhookUrl(f"{parts.hostname!r} does not resolve", field="url") from exc
    if not addresses:
        raise UnsafeWebhookUrl(f"{parts.hostname!r} does not resolve", field="url")
    refused = [a for a in addresses if not is_public_address(a)]
    if refused and not allow_private:
        raise UnsafeWebhookUrl(
            f"{parts.hostname!r} resolves to a loopback, private or reserved address "
            "(the operator may allow them: FIDELE_WEBHOOKS_ALLOW_PRIVATE=true)",
            field="url",
        )
    pinned = addresses[0]
    netloc = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    if parts.port:
        netloc += f":{parts.port}"
    userinfo, _, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo}@{netloc}" if userinfo else netloc
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return Target(urlunsplit(parts._replace(netloc=netloc)), host, extensions)
