"""SSRF guard for outbound URLs chosen by tenants (webhook endpoints, calendar webhook_url).

Standard Webhooks 1.0.0, "Server side request forgery (SSRF)", warns that webhook senders
call URLs their customers choose, so an attacker can aim them at cloud metadata or internal
services (OWASP API7:2023). This module refuses such URLs in two steps:

1. :func:`check_url_syntax` (no I/O): absolute ``https`` URL (``http`` only to loopback in
   development), no credentials, a sane host and port. Literal IP hosts are judged at once.
   Numeric hosts that are not a canonical dotted quad (``2130706433``, ``0x7f.1``,
   ``127.1``, ``0177.0.0.1``) are refused: ``getaddrinfo`` (``inet_aton``) would quietly
   read them as ``127.0.0.1``.
2. :func:`resolve_and_check`: resolves the host and refuses the URL if **any** address is
   not allowed (an attacker controls which record a client picks).

Call :func:`resolve_and_check` when a URL is stored **and again before every delivery**:
DNS answers change (DNS rebinding: public at creation, ``10.0.0.1`` at delivery). A
re-check alone leaves a window: an HTTP client that resolves the name again when it
connects may get another answer. So the client for tenant URLs
(:mod:`showup.security.egress`) resolves through :func:`resolve_host` itself, with the
same policy, and connects only to an address it vetted. Redirects must not be followed
(the spec treats 3xx as failure anyway). The spec's further advice, an egress proxy such
as smokescreen and an isolated subnet, is deployment's job.

Error messages never repeat the URL: it may hold credentials or tokens.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Final, Literal, Protocol
from urllib.parse import urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "AddressKind",
    "IPAddress",
    "ParsedUrl",
    "RejectCode",
    "Resolver",
    "UrlPolicy",
    "UrlRejected",
    "check_address",
    "check_url_syntax",
    "classify_address",
    "resolve_and_check",
    "resolve_host",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RejectCode = Literal[
    "invalid_url", "scheme_not_allowed", "host_not_allowed", "private_address", "unresolvable"
]
AddressKind = Literal[
    "public",
    "loopback",
    "private",
    "link_local",
    "metadata",
    "unspecified",
    "multicast",
    "reserved",
]

MAX_URL_LENGTH: Final = 2048
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class UrlPolicy:
    """What an outbound URL may point at. The default is production: public https only.

    - ``allow_http_loopback``: development; permits loopback addresses (over https, and over
      plain http when the host itself is loopback).
    - ``allow_private``: private networks (RFC 1918, CGNAT 100.64/10, ULA fc00::/7) and
      link-local ranges, for self-hosters whose tenants live on the same network.
    - ``allow_metadata``: lifts only the ban on cloud metadata endpoints; the address must
      still pass its range's rule (they are all link-local or private, so ``allow_private``
      is needed too). Leave it off: metadata services hand out cloud credentials.
    """

    allow_http_loopback: bool = False
    allow_private: bool = False
    allow_metadata: bool = False


class UrlRejected(ValueError):
    """A URL the policy refuses. ``code`` is machine-readable; ``message`` is for humans."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code: RejectCode = code
        self.message = message


@dataclass(frozen=True)
class ParsedUrl:
    """A syntactically accepted URL.

    ``host`` is lowercase ASCII without IPv6 brackets (as the HTTP client will resolve it);
    ``port`` is explicit or the scheme default; ``ip`` is set when the host is a literal.
    """

    url: str
    scheme: Literal["http", "https"]
    host: str
    port: int
    ip: IPAddress | None


class Resolver(Protocol):
    """Resolve ``host`` for a TCP connection to ``port``: the addresses, as text."""

    async def __call__(self, host: str, port: int) -> list[str]: ...


def _v4(*cidrs: str) -> tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.IPv4Network(c) for c in cidrs)


def _v6(*cidrs: str) -> tuple[ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.IPv6Network(c) for c in cidrs)


# Explicit tables from the IANA special-purpose address registries (RFC 6890 and successors)
# rather than ipaddress.is_private / is_global, whose answers changed between Python
# releases (3.11's is_global even says True for the IPv4-compatible ::7f00:1).
_METADATA: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS Pod Identity agent
        "100.100.100.200",  # Alibaba Cloud metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
    )
)
# Names that reach metadata through the cloud's own DNS or search domains. Resolution
# would catch them too; refusing by name gives a clearer error before any lookup.
_METADATA_HOSTS: Final = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data"}
)
_V4_TABLE: Final[tuple[tuple[AddressKind, tuple[ipaddress.IPv4Network, ...]], ...]] = (
    # "This network". Linux connects to 0.0.0.0 as if it were 127.0.0.1.
    ("unspecified", _v4("0.0.0.0/8")),
    ("loopback", _v4("127.0.0.0/8")),
    ("link_local", _v4("169.254.0.0/16")),
    # RFC 1918 plus RFC 6598 shared space (CGNAT): not public, often a provider's internal net.
    ("private", _v4("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")),
    ("multicast", _v4("224.0.0.0/4")),
    (
        "reserved",
        _v4(
            "192.0.0.0/24",  # IETF protocol assignments
            "192.0.2.0/24",  # TEST-NET-1
            "192.88.99.0/24",  # deprecated 6to4 relay anycast
            "198.18.0.0/15",  # benchmarking (also used for fake-IP DNS in some proxies)
            "198.51.100.0/24",  # TEST-NET-2
            "203.0.113.0/24",  # TEST-NET-3
            "240.0.0.0/4",  # reserved, including the broadcast 255.255.255.255
        ),
    ),
)
_V6_TABLE: Final[tuple[tuple[AddressKind, tuple[ipaddress.IPv6Network, ...]], ...]] = (
    ("unspecified", _v6("::/128")),
    ("loopback", _v6("::1/128")),
    ("link_local", _v6("fe80::/10")),
    # Unique local (fc00::/7), deprecated site-local, and RFC 8215 local-use NAT64.
    ("private", _v6("fc00::/7", "fec0::/10", "64:ff9b:1::/48")),
    ("multicast", _v6("ff00::/8")),
    (
        "reserved",
        _v6(
            "100::/64",  # discard-only
            "2001::/23",  # IETF protocol assignments, including Teredo 2001::/32
            "2001:db8::/32",  # documentation
            "3fff::/20",  # documentation (RFC 9637)
            "5f00::/16",  # SRv6 SIDs
        ),
    ),
)
_V6_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
# Only 2000::/3 is allocated as global unicast; everything else left over is reserved.
_V6_GLOBAL_UNICAST: Final = ipaddress.IPv6Network("2000::/3")

# Hostname labels after IDNA: letters, digits, hyphen, and underscore (seen on internal
# names). Non-ASCII is refused before this: our IDNA mapping might differ from the HTTP
# client's (IDNA 2003 maps "faß" to "fass", IDNA 2008 does not), and then we would check one
# host and connect to another.
_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG URL "ends in a number": such a host is parsed as IPv4, in any base.
_NUMERIC_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PORT: Final = re.compile(r"[0-9]{1,5}")
# Whitespace and control characters: urlsplit silently deletes tabs and newlines
# ("exa\tmple.com" becomes "example.com"), other parsers refuse or keep them.
_BAD_URL_CHARS: Final = re.compile(r"[\x00-\x20\x7f]")


def classify_address(address: IPAddress) -> AddressKind:
    """The special-purpose range ``address`` belongs to, or ``"public"``.

    IPv4-mapped IPv6 (``::ffff:127.0.0.1``) is classified as the IPv4 address it is on a
    dual-stack socket. NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are classified
    by the IPv4 address they embed when that one is not public.
    """
    if address in _METADATA:
        return "metadata"
    if isinstance(address, ipaddress.IPv4Address):
        for kind, networks in _V4_TABLE:
            if any(address in net for net in networks):
                return kind
        return "public"
    if address.ipv4_mapped is not None:
        return classify_address(address.ipv4_mapped)
    for kind6, networks6 in _V6_TABLE:
        if any(address in net for net in networks6):
            return kind6
    embedded: ipaddress.IPv4Address | None = None
    if address in _V6_NAT64:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    elif address.sixtofour is not None:
        embedded = address.sixtofour
    if embedded is not None:
        # Public when the embedded address is; otherwise whatever the embedded one is.
        return classify_address(embedded)
    if address not in _V6_GLOBAL_UNICAST:
        return "reserved"
    return "public"


def _allowed(kind: AddressKind, policy: UrlPolicy) -> bool:
    if kind == "public":
        return True
    if kind == "loopback":
        return policy.allow_http_loopback
    if kind in ("private", "link_local"):
        return policy.allow_private
    if kind == "metadata":
        # Every metadata address is link-local or private, so both switches must be on.
        return policy.allow_metadata and policy.allow_private
    # unspecified, multicast, reserved: never a webhook receiver.
    return False


def check_address(address: IPAddress, policy: UrlPolicy) -> None:
    """Raise :class:`UrlRejected` (``private_address``) unless ``policy`` allows ``address``.

    Delivery code can call this on the peer address of the connection it actually made.
    """
    kind = classify_address(address)
    if not _allowed(kind, policy):
        raise UrlRejected(
            "private_address", f"{address} is a {kind.replace('_', '-')} address, not allowed"
        )


def _invalid(message: str) -> UrlRejected:
    return UrlRejected("invalid_url", message)


def _split_netloc(netloc: str) -> tuple[str, bool, str | None]:
    """Split ``netloc`` (no userinfo) into (host, bracketed, port text or None if no ':')."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end == -1:
            raise _invalid("unterminated IPv6 address in URL")
        host, rest = netloc[1:end], netloc[end + 1 :]
        bracketed = True
    else:
        host, sep, port = netloc.partition(":")
        rest = sep + port
        bracketed = False
    if rest and not rest.startswith(":"):
        raise _invalid("unexpected characters after the host")
    return host, bracketed, rest[1:] if rest else None


def _parse_port(text: str | None, scheme: str) -> int:
    if text is None:
        return _DEFAULT_PORTS[scheme]
    # An empty port ("host:") is legal in RFC 3986 but useless; refuse it with the rest.
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise _invalid("port must be a number from 1 to 65535")
    return int(text)


def _parse_host(host: str, bracketed: bool) -> tuple[str, IPAddress | None]:
    """Return the normalized host and its IP when it is a literal; refuse odd forms."""
    if bracketed:
        # "%" would be an IPv6 zone id (fe80::1%25eth0), which ipaddress accepts.
        if "%" in host:
            raise _invalid("IPv6 zone identifiers are not allowed")
        try:
            return host.lower(), ipaddress.IPv6Address(host)
        except ValueError:
            raise _invalid("bracketed host is not an IPv6 address") from None
    if not host:
        raise _invalid("URL has no host")
    if not host.isascii():
        raise _invalid("internationalized host names must be given in ASCII (xn--) form")
    host = host.lower()
    name = host.removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _invalid("host is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # Only the canonical dotted quad is accepted: ipaddress refuses octal, hex, short
        # forms and leading zeros, and a trailing dot, all of which inet_aton would accept.
        try:
            return host, ipaddress.IPv4Address(host)
        except ValueError:
            raise UrlRejected(
                "host_not_allowed", "numeric host must be a canonical dotted-quad IPv4 address"
            ) from None
    return host, None


def _is_loopback_name(host: str) -> bool:
    # RFC 6761 §6.3: "localhost" and every name under it resolve to loopback.
    name = host.removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


def check_url_syntax(url: str, policy: UrlPolicy) -> ParsedUrl:
    """Check ``url`` without any I/O; return its parts or raise :class:`UrlRejected`.

    Accepts an absolute ``https`` URL of at most 2048 characters, with a host, without
    credentials, whitespace or control characters, and with a port from 1 to 65535 if one
    is given. Plain ``http`` is accepted only when ``policy.allow_http_loopback`` is set and
    the host is loopback (``localhost``, ``*.localhost``, 127.0.0.0/8, ``::1``). A literal
    IP host is checked against the policy here; a name is checked by
    :func:`resolve_and_check`.
    """
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"URL is longer than {MAX_URL_LENGTH} characters")
    if _BAD_URL_CHARS.search(url):
        raise _invalid("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _invalid("URL cannot be parsed") from None
    if not parts.scheme:
        raise _invalid("URL must be absolute (https://...)")
    if parts.scheme not in _DEFAULT_PORTS:
        raise UrlRejected("scheme_not_allowed", "URL scheme must be https")
    if not parts.netloc:
        raise _invalid("URL has no host")
    if "@" in parts.netloc:
        raise _invalid("URL must not contain credentials (user:password@)")

    host_text, bracketed, port_text = _split_netloc(parts.netloc)
    host, ip = _parse_host(host_text, bracketed)
    port = _parse_port(port_text, parts.scheme)

    _check_host_name(host, policy)
    if ip is not None:
        check_address(ip, policy)

    scheme: Literal["http", "https"] = "https" if parts.scheme == "https" else "http"
    if scheme == "http":
        is_loopback = _is_loopback_name(host) or (
            ip is not None and classify_address(ip) == "loopback"
        )
        if not (policy.allow_http_loopback and is_loopback):
            raise UrlRejected(
                "scheme_not_allowed", "URL must use https (http only to loopback in development)"
            )
    return ParsedUrl(url=url, scheme=scheme, host=host, port=port, ip=ip)


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's answer for ``host`` (``loop.getaddrinfo``): IPv4 and IPv6 addresses."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [
        str(sockaddr[0])
        for family, _type, _proto, _canon, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]


def _check_host_name(host: str, policy: UrlPolicy) -> None:
    if _is_loopback_name(host) and not policy.allow_http_loopback:
        raise UrlRejected("host_not_allowed", "localhost is not allowed")
    if host.removesuffix(".") in _METADATA_HOSTS and not policy.allow_metadata:
        raise UrlRejected("host_not_allowed", "cloud metadata hosts are not allowed")


async def resolve_host(
    host: str,
    port: int,
    policy: UrlPolicy,
    *,
    resolver: Resolver | None = None,
    loopback_only: bool = False,
) -> list[IPAddress]:
    """The addresses ``host`` stands for, each one allowed by ``policy``, in resolver order.

    ``host`` is what an HTTP client connects to: a name, or a literal IPv4 or (unbracketed)
    IPv6 address, which is checked without a lookup. ``loopback_only`` is the rule for
    plain ``http``: every address must be loopback. Any refused address refuses the host.

    Raises:
        UrlRejected: ``host_not_allowed`` (localhost or a metadata name the policy bans),
            ``unresolvable``, ``private_address``, or ``scheme_not_allowed`` (an address
            that is allowed but not loopback, with ``loopback_only``).
    """
    host = host.lower()
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        answers = [str(literal)]
    else:
        _check_host_name(host, policy)
        resolve: Resolver = resolver or system_resolver
        try:
            answers = await resolve(host, port)
        except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
            raise UrlRejected("unresolvable", "host name could not be resolved") from exc

    addresses: list[IPAddress] = []
    for text in answers:
        try:
            # getaddrinfo appends "%scope" to link-local IPv6 answers.
            address = ipaddress.ip_address(text.partition("%")[0])
        except ValueError:
            raise UrlRejected("unresolvable", "resolver returned a non-address") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UrlRejected("unresolvable", "host name has no addresses")

    for address in addresses:
        kind = classify_address(address)
        # The address itself is left out of the message: echoing internal DNS answers
        # would turn this check into a probe of our network for the tenant.
        if not _allowed(kind, policy):
            raise UrlRejected(
                "private_address", f"host resolves to a {kind.replace('_', '-')} address"
            )
        if loopback_only and kind != "loopback":
            raise UrlRejected("scheme_not_allowed", "http is only allowed to loopback addresses")
    return addresses


async def resolve_and_check(
    url: str, policy: UrlPolicy, *, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Check ``url`` and every address its host resolves to; return those addresses.

    Any refused address refuses the URL: the HTTP client may pick any record, and an
    attacker can publish one public and one private. Call again before every delivery
    (DNS rebinding; see the module docstring). ``resolver`` defaults to the system
    resolver through ``loop.getaddrinfo``; tests pass a fake. Add a timeout around the
    call if the caller needs one.

    Raises:
        UrlRejected: as :func:`check_url_syntax`, or ``unresolvable`` (no answer, lookup
            error, or an answer that is not an IP address), or ``private_address``, or
            ``scheme_not_allowed`` when an ``http`` URL resolves to anything but loopback.
    """
    parsed = check_url_syntax(url, policy)
    if parsed.ip is not None:
        return [parsed.ip]
    return await resolve_host(
        parsed.host,
        parsed.port,
        policy,
        resolver=resolver,
        loopback_only=parsed.scheme == "http",
    )
