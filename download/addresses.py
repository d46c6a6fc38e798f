"""Which addresses a user-supplied URL may reach: globally routable ones, and named exceptions."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


Endpoint = tuple[str, int]  # (host, port) as `endpoint` normalises them


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4


def is_public(address: IpAddress) -> bool:
    """Only globally routable unicast addresses. An IPv6 address that carries an IPv4 one
    (mapped, NAT64, 6to4, Teredo) is judged by that IPv4 too: it is where packets go."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64 else None)
        if inner is not None:
            return is_public(inner)
        tunnelled = [address.sixtofour, *(address.teredo or ())]
        if any(v4 is not None and not is_public(v4) for v4 in tunnelled):
            return False
        if address.is_reserved:  # ::/8 among others: IPv4-compatible, local-use NAT64
            return False
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def endpoint(host: str, port: int) -> Endpoint:
    """Comparable: names in lower case, IP literals in their canonical form."""
    address = literal_address(host)
    return (str(address) if address else host.lower().rstrip("."), port)


def url_endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    return endpoint(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))


def endpoints(entries: str) -> frozenset[Endpoint]:
    """Parse a comma-separated host:port list ([v6]:port); ValueError names a bad entry."""
    found = set()
    for entry in filter(None, (e.strip() for e in entries.split(","))):
        try:
            parts = urlsplit("//" + entry)
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.path or port == 0:
            raise ValueError(f"{entry!r} is not host:port")
        found.add(endpoint(parts.hostname, port))
    return frozenset(found)
