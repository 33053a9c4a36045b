"""SSRF guard: URL syntax, address classes, policies, resolution and DNS rebinding."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from showup.security.url_guard import (
    MAX_URL_LENGTH,
    AddressKind,
    IPAddress,
    UrlPolicy,
    UrlRejected,
    check_address,
    check_url_syntax,
    classify_address,
    resolve_and_check,
)

PROD = UrlPolicy()
DEV = UrlPolicy(allow_http_loopback=True)
PRIVATE = UrlPolicy(allow_private=True)
METADATA = UrlPolicy(allow_private=True, allow_metadata=True)
ALL = UrlPolicy(allow_http_loopback=True, allow_private=True, allow_metadata=True)


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


class FakeResolver:
    """Answers from a script: one list of addresses per call, the last one repeating."""

    def __init__(self, *answers: Sequence[str] | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)


# --- address classification ----------------------------------------------------------------

CLASSES: list[tuple[str, AddressKind]] = [
    # IPv4
    ("8.8.8.8", "public"),
    ("1.1.1.1", "public"),
    ("93.184.216.34", "public"),
    ("100.63.255.255", "public"),
    ("100.128.0.0", "public"),
    ("172.15.255.255", "public"),
    ("172.32.0.0", "public"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),  # CGNAT
    ("100.127.255.255", "private"),
    ("169.254.0.1", "link_local"),
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("100.100.100.200", "metadata"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "reserved"),
    ("198.51.100.1", "reserved"),
    ("203.0.113.1", "reserved"),
    ("198.18.0.1", "reserved"),
    ("192.0.0.8", "reserved"),
    # IPv6
    ("2606:4700:4700::1111", "public"),
    ("2001:4860:4860::8888", "public"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link_local"),
    ("febf:ffff::1", "link_local"),
    ("fc00::1", "private"),
    ("fd12:3456:789a::1", "private"),
    ("fec0::1", "private"),
    ("fd00:ec2::254", "metadata"),
    ("fd00:ec2::23", "metadata"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "reserved"),
    ("2001::1", "reserved"),  # Teredo
    ("100::1", "reserved"),
    ("3fff::1", "reserved"),
    ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated
    ("::ffff:0:7f00:1", "reserved"),  # IPv4-translated (SIIT)
    ("4000::1", "reserved"),  # outside 2000::/3
    # IPv4-mapped: whatever the IPv4 address is
    ("::ffff:8.8.8.8", "public"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:0.0.0.0", "unspecified"),
    # NAT64 and 6to4: the embedded IPv4 address decides when it is not public
    ("64:ff9b::808:808", "public"),
    ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "metadata"),
    ("64:ff9b:1::a00:1", "private"),  # local-use NAT64 prefix
    ("2002:808:808::1", "public"),
    ("2002:7f00:1::1", "loopback"),
    ("2002:a00:1::1", "private"),
]


@pytest.mark.parametrize(("address", "kind"), CLASSES)
def test_classify_address(address: str, kind: AddressKind) -> None:
    assert classify_address(ip(address)) == kind


# What each policy lets through, per address kind.
ALLOWED: dict[UrlPolicy, set[AddressKind]] = {
    PROD: {"public"},
    DEV: {"public", "loopback"},
    PRIVATE: {"public", "private", "link_local"},
    UrlPolicy(allow_metadata=True): {"public"},  # metadata needs its range allowed too
    METADATA: {"public", "private", "link_local", "metadata"},
    ALL: {"public", "loopback", "private", "link_local", "metadata"},
}


@pytest.mark.parametrize("policy", list(ALLOWED), ids=repr)
@pytest.mark.parametrize(("address", "kind"), CLASSES)
def test_check_address_policy_matrix(policy: UrlPolicy, address: str, kind: AddressKind) -> None:
    if kind in ALLOWED[policy]:
        check_address(ip(address), policy)
    else:
        with pytest.raises(UrlRejected) as err:
            check_address(ip(address), policy)
        assert err.value.code == "private_address"


# --- URL syntax ------------------------------------------------------------------------------

REJECTED: list[tuple[str, UrlPolicy, str]] = [
    # not a usable URL
    ("", PROD, "invalid_url"),
    ("example.com/hook", PROD, "invalid_url"),
    ("//example.com/hook", PROD, "invalid_url"),
    ("/hook", PROD, "invalid_url"),
    ("https://", PROD, "invalid_url"),
    ("https:///hook", PROD, "invalid_url"),
    ("https:example.com", PROD, "invalid_url"),
    ("https://:443/", PROD, "invalid_url"),
    ("https://" + "a" * 2040 + ".com/", PROD, "invalid_url"),  # host too long
    ("https://example.com/" + "a" * MAX_URL_LENGTH, PROD, "invalid_url"),
    # credentials in the URL
    ("https://user:pass@example.com/", PROD, "invalid_url"),
    ("https://user@example.com/", PROD, "invalid_url"),
    ("https://@example.com/", PROD, "invalid_url"),
    ("https://example.com@169.254.169.254/", PROD, "invalid_url"),
    ("https://evil.com\\@example.com/", PROD, "invalid_url"),
    # whitespace, controls and parser-differential characters
    ("https://exa\tmple.com/", PROD, "invalid_url"),
    ("https://example.com/\nx", PROD, "invalid_url"),
    (" https://example.com/", PROD, "invalid_url"),
    ("https://example.com /", PROD, "invalid_url"),
    ("https://example.com\x00.evil/", PROD, "invalid_url"),
    ("https://example.com\\.evil.com/", PROD, "invalid_url"),
    ("https://exa%6dple.com/", PROD, "invalid_url"),
    ("https://%31%32%37.0.0.1/", PROD, "invalid_url"),
    ("https://exam ple.com/", PROD, "invalid_url"),
    ("https://-example.com/", PROD, "invalid_url"),
    ("https://example-.com/", PROD, "invalid_url"),
    ("https://a..b.com/", PROD, "invalid_url"),
    ("https://.example.com/", PROD, "invalid_url"),
    ("https://example.com../", PROD, "invalid_url"),
    ("https://" + "a" * 64 + ".com/", PROD, "invalid_url"),
    # internationalized names must come as xn--
    ("https://bücher.de/", PROD, "invalid_url"),
    ("https://１２７.０.０.１/", DEV, "invalid_url"),  # noqa: RUF001 - fullwidth on purpose
    ("https://127。0。0。1/", DEV, "invalid_url"),  # ideographic full stops
    ("https://ｌｏｃａｌｈｏｓｔ/", PROD, "invalid_url"),  # noqa: RUF001
    # ports
    ("https://example.com:0/", PROD, "invalid_url"),
    ("https://example.com:65536/", PROD, "invalid_url"),
    ("https://example.com:99999/", PROD, "invalid_url"),
    ("https://example.com:123456/", PROD, "invalid_url"),
    ("https://example.com:/", PROD, "invalid_url"),
    ("https://example.com:-1/", PROD, "invalid_url"),
    ("https://example.com:+443/", PROD, "invalid_url"),
    ("https://example.com:0x1bb/", PROD, "invalid_url"),
    ("https://example.com:443:443/", PROD, "invalid_url"),
    ("https://example.com:４４３/", PROD, "invalid_url"),  # noqa: RUF001
    # IPv6 literal forms
    ("https://[::1/", DEV, "invalid_url"),
    ("https://[127.0.0.1]/", DEV, "invalid_url"),
    ("https://[v1.fe80::1]/", ALL, "invalid_url"),
    ("https://[fe80::1%25eth0]/", ALL, "invalid_url"),
    ("https://[fe80::1%eth0]/", ALL, "invalid_url"),
    ("https://[2606:4700::1111]x/", PROD, "invalid_url"),
    ("https://::1/", DEV, "invalid_url"),
    # schemes
    ("ftp://example.com/", PROD, "scheme_not_allowed"),
    ("file:///etc/passwd", ALL, "scheme_not_allowed"),
    ("gopher://127.0.0.1:6379/_INFO", ALL, "scheme_not_allowed"),
    ("ws://example.com/", PROD, "scheme_not_allowed"),
    ("javascript:alert(1)", PROD, "scheme_not_allowed"),
    ("localhost:8080/hook", DEV, "scheme_not_allowed"),  # parses as scheme "localhost"
    ("http://example.com/", PROD, "scheme_not_allowed"),
    ("http://example.com/", DEV, "scheme_not_allowed"),  # http only to loopback
    ("http://8.8.8.8/", DEV, "scheme_not_allowed"),
    ("http://10.0.0.1/", ALL, "scheme_not_allowed"),  # private is not loopback
    ("http://localhost.example.com/", DEV, "scheme_not_allowed"),
    # names
    ("https://localhost/", PROD, "host_not_allowed"),
    ("https://LOCALHOST./", PROD, "host_not_allowed"),
    ("http://localhost:8000/", PROD, "host_not_allowed"),
    ("https://api.localhost/", PROD, "host_not_allowed"),
    ("https://metadata.google.internal/computeMetadata/v1/", PROD, "host_not_allowed"),
    ("https://METADATA.GOOGLE.INTERNAL./", PRIVATE, "host_not_allowed"),
    ("https://metadata/", PRIVATE, "host_not_allowed"),
    ("https://instance-data/latest/meta-data/", PRIVATE, "host_not_allowed"),
    # encoded IPv4 tricks: anything numeric that is not a canonical dotted quad
    ("http://2130706433/", DEV, "host_not_allowed"),
    ("https://2130706433/", ALL, "host_not_allowed"),
    ("https://0x7f.1/", ALL, "host_not_allowed"),
    ("https://0x7f000001/", ALL, "host_not_allowed"),
    ("https://0X7F000001/", ALL, "host_not_allowed"),
    ("https://017700000001/", ALL, "host_not_allowed"),
    ("https://0177.0.0.1/", ALL, "host_not_allowed"),
    ("https://127.1/", ALL, "host_not_allowed"),
    ("https://127.0.1/", ALL, "host_not_allowed"),
    ("https://127.000.000.001/", ALL, "host_not_allowed"),
    ("https://127.0.0.1./", ALL, "host_not_allowed"),
    ("https://0/", ALL, "host_not_allowed"),
    ("https://0x/", ALL, "host_not_allowed"),
    ("https://2852039166/", ALL, "host_not_allowed"),  # 169.254.169.254
    ("https://0xa9.0xfe.0xa9.0xfe/", ALL, "host_not_allowed"),
    ("https://134744072/", PROD, "host_not_allowed"),  # 8.8.8.8: still refused
    ("https://1.2.3.4.5/", PROD, "host_not_allowed"),
    ("https://256.1.1.1/", PROD, "host_not_allowed"),
    ("https://example.123/", PROD, "host_not_allowed"),
    ("https://foo.0x10/", PROD, "host_not_allowed"),
    # literal addresses the policy refuses
    ("https://127.0.0.1/", PROD, "private_address"),
    ("http://127.0.0.1/", PROD, "private_address"),
    ("https://127.0.0.1/", PRIVATE, "private_address"),
    ("https://[::1]/", PROD, "private_address"),
    ("https://[::ffff:127.0.0.1]/", PROD, "private_address"),
    ("https://[::ffff:7f00:1]/", PROD, "private_address"),
    ("https://[::ffff:10.0.0.1]/", PROD, "private_address"),
    ("https://[::ffff:169.254.169.254]/", PRIVATE, "private_address"),
    ("https://[64:ff9b::a9fe:a9fe]/", PRIVATE, "private_address"),
    ("https://[::127.0.0.1]/", ALL, "private_address"),
    ("https://0.0.0.0/", ALL, "private_address"),
    ("https://[::]/", ALL, "private_address"),
    ("https://10.0.0.1/", PROD, "private_address"),
    ("https://10.0.0.1/", DEV, "private_address"),
    ("https://172.16.0.1/", PROD, "private_address"),
    ("https://192.168.0.1/", PROD, "private_address"),
    ("https://100.64.0.1/", PROD, "private_address"),
    ("https://169.254.1.1/", PROD, "private_address"),
    ("https://169.254.169.254/latest/meta-data/", PROD, "private_address"),
    ("https://169.254.169.254/latest/meta-data/", PRIVATE, "private_address"),
    ("https://169.254.169.254/", UrlPolicy(allow_metadata=True), "private_address"),
    ("https://[fd00:ec2::254]/", PRIVATE, "private_address"),
    ("https://[fe80::1]/", PROD, "private_address"),
    ("https://[fc00::1]/", PROD, "private_address"),
    ("https://[fd00::1]/", PROD, "private_address"),
    ("https://224.0.0.1/", ALL, "private_address"),
    ("https://[ff02::1]/", ALL, "private_address"),
    ("https://255.255.255.255/", ALL, "private_address"),
    ("https://192.0.2.1/", ALL, "private_address"),
    ("https://[2001:db8::1]/", ALL, "private_address"),
]


@pytest.mark.parametrize(("url", "policy", "code"), REJECTED)
def test_rejected(url: str, policy: UrlPolicy, code: str) -> None:
    with pytest.raises(UrlRejected) as err:
        check_url_syntax(url, policy)
    assert err.value.code == code
    assert str(err.value) == err.value.message
    assert isinstance(err.value, ValueError)


ACCEPTED: list[tuple[str, UrlPolicy, str, str, int, str | None]] = [
    # url, policy, scheme, host, port, literal ip
    ("https://example.com/hook", PROD, "https", "example.com", 443, None),
    ("https://Example.COM/Hook?x=1#frag", PROD, "https", "example.com", 443, None),
    ("HTTPS://example.com", PROD, "https", "example.com", 443, None),
    ("https://example.com./", PROD, "https", "example.com.", 443, None),
    ("https://hooks.example.co.uk:8443/a/b", PROD, "https", "hooks.example.co.uk", 8443, None),
    ("https://example.com:1/", PROD, "https", "example.com", 1, None),
    ("https://example.com:65535/", PROD, "https", "example.com", 65535, None),
    ("https://example.com:00443/", PROD, "https", "example.com", 443, None),
    ("https://xn--bcher-kva.de/", PROD, "https", "xn--bcher-kva.de", 443, None),
    ("https://_dmarc.example.com/", PROD, "https", "_dmarc.example.com", 443, None),
    ("https://1password.com/", PROD, "https", "1password.com", 443, None),
    ("https://123.example.com/", PROD, "https", "123.example.com", 443, None),
    ("https://0x7f.example/", PROD, "https", "0x7f.example", 443, None),
    ("https://a" + "." + "b" * 63 + ".com/", PROD, "https", "a." + "b" * 63 + ".com", 443, None),
    ("https://example.com/p@th?q=a@b", PROD, "https", "example.com", 443, None),
    ("https://8.8.8.8/", PROD, "https", "8.8.8.8", 443, "8.8.8.8"),
    ("https://[2606:4700::1111]:8443/", PROD, "https", "2606:4700::1111", 8443, "2606:4700::1111"),
    ("https://[2606:4700::1111]/", PROD, "https", "2606:4700::1111", 443, "2606:4700::1111"),
    ("https://[::ffff:8.8.8.8]/", PROD, "https", "::ffff:8.8.8.8", 443, "::ffff:8.8.8.8"),
    ("https://[64:ff9b::808:808]/", PROD, "https", "64:ff9b::808:808", 443, "64:ff9b::808:808"),
    # development: loopback, over http or https
    ("http://localhost:8000/hook", DEV, "http", "localhost", 8000, None),
    ("http://LocalHost./hook", DEV, "http", "localhost.", 80, None),
    ("http://receiver.localhost/", DEV, "http", "receiver.localhost", 80, None),
    ("https://localhost/", DEV, "https", "localhost", 443, None),
    ("http://127.0.0.1:9000/", DEV, "http", "127.0.0.1", 9000, "127.0.0.1"),
    ("http://127.8.9.10/", DEV, "http", "127.8.9.10", 80, "127.8.9.10"),
    ("http://[::1]:9000/", DEV, "http", "::1", 9000, "::1"),
    ("http://[::ffff:127.0.0.1]/", DEV, "http", "::ffff:127.0.0.1", 80, "::ffff:127.0.0.1"),
    ("https://127.0.0.1/", DEV, "https", "127.0.0.1", 443, "127.0.0.1"),
    # self-hosting on a private network
    ("https://10.1.2.3/", PRIVATE, "https", "10.1.2.3", 443, "10.1.2.3"),
    ("https://100.64.0.1/", PRIVATE, "https", "100.64.0.1", 443, "100.64.0.1"),
    ("https://169.254.1.1/", PRIVATE, "https", "169.254.1.1", 443, "169.254.1.1"),
    ("https://[fd12::1]/", PRIVATE, "https", "fd12::1", 443, "fd12::1"),
    ("https://[fe80::1]/", PRIVATE, "https", "fe80::1", 443, "fe80::1"),
    ("https://printer.internal/", PRIVATE, "https", "printer.internal", 443, None),
    # only with the explicit metadata switch
    ("https://169.254.169.254/", METADATA, "https", "169.254.169.254", 443, "169.254.169.254"),
    ("https://[fd00:ec2::254]/", METADATA, "https", "fd00:ec2::254", 443, "fd00:ec2::254"),
    (
        "https://metadata.google.internal/",
        METADATA,
        "https",
        "metadata.google.internal",
        443,
        None,
    ),
]


@pytest.mark.parametrize(("url", "policy", "scheme", "host", "port", "literal"), ACCEPTED)
def test_accepted(
    url: str, policy: UrlPolicy, scheme: str, host: str, port: int, literal: str | None
) -> None:
    parsed = check_url_syntax(url, policy)
    assert (parsed.url, parsed.scheme, parsed.host, parsed.port) == (url, scheme, host, port)
    assert parsed.ip == (ip(literal) if literal else None)


@pytest.mark.parametrize(("url", "policy", "scheme", "host", "port", "literal"), ACCEPTED)
def test_httpx_sees_the_same_host_and_port(
    url: str, policy: UrlPolicy, scheme: str, host: str, port: int, literal: str | None
) -> None:
    # Parser differentials are how SSRF filters get bypassed: what we checked must be what
    # the HTTP client connects to.
    target = httpx.URL(url)
    assert target.scheme == scheme
    assert target.raw_host.decode("ascii") == host  # .host would show xn-- names decoded
    assert (target.port or {"http": 80, "https": 443}[scheme]) == port


def test_length_limit_is_inclusive() -> None:
    base = "https://example.com/"
    check_url_syntax(base + "a" * (MAX_URL_LENGTH - len(base)), PROD)
    with pytest.raises(UrlRejected, match="longer"):
        check_url_syntax(base + "a" * (MAX_URL_LENGTH - len(base) + 1), PROD)


def test_messages_do_not_echo_credentials() -> None:
    with pytest.raises(UrlRejected) as err:
        check_url_syntax("https://alice:hunter2@example.com/", PROD)
    assert "hunter2" not in str(err.value)


def test_policy_is_frozen_and_hashable() -> None:
    with pytest.raises(AttributeError):
        PROD.allow_private = True  # type: ignore[misc]
    assert UrlPolicy() == PROD
    assert not (PROD.allow_http_loopback or PROD.allow_private or PROD.allow_metadata)


# --- property tests ------------------------------------------------------------------------


@given(st.ip_addresses(v=4))
def test_any_ipv4_literal_accepted_iff_public(address: ipaddress.IPv4Address) -> None:
    url = f"https://{address}/"
    if classify_address(address) == "public":
        assert check_url_syntax(url, PROD).ip == address
    else:
        with pytest.raises(UrlRejected) as err:
            check_url_syntax(url, PROD)
        assert err.value.code == "private_address"


@given(st.ip_addresses(v=6))
def test_any_ipv6_literal_accepted_iff_public(address: ipaddress.IPv6Address) -> None:
    url = f"https://[{address}]/"
    if classify_address(address) == "public":
        assert check_url_syntax(url, PROD).ip == address
    else:
        with pytest.raises(UrlRejected) as err:
            check_url_syntax(url, PROD)
        assert err.value.code == "private_address"


@given(st.ip_addresses(v=4))
def test_mapped_ipv6_classified_as_its_ipv4(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert classify_address(mapped) == classify_address(address)


def _encodings(value: int) -> list[str]:
    a, b, c, d = value.to_bytes(4, "big")
    return [
        str(value),  # 2130706433
        hex(value),  # 0x7f000001
        "0" + oct(value)[2:],  # 017700000001
        f"{a}.{(b << 16) | (c << 8) | d}",  # 127.1
        f"{a}.{b}.{(c << 8) | d}",  # 127.0.1
        f"{a:#x}.{b:#x}.{c:#x}.{d:#x}",  # 0x7f.0x0.0x0.0x1
        f"0{a:o}.{b}.{c}.{d}",  # 0177.0.0.1
        f"{a}.{b}.{c}.{d}.",  # trailing dot
        f"{a:03}.{b:03}.{c:03}.{d:03}",  # zero-padded
    ]


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_encoded_ipv4_hosts_always_refused(value: int) -> None:
    for host in _encodings(value):
        if host == str(ipaddress.IPv4Address(value)):
            continue  # zero-padding a number below 100 in every octet is canonical again
        with pytest.raises(UrlRejected) as err:
            check_url_syntax(f"https://{host}/", ALL)
        assert err.value.code == "host_not_allowed", host


@given(st.text(max_size=300))
def test_arbitrary_text_only_raises_url_rejected(text: str) -> None:
    for url in (text, "https://" + text, "http://" + text):
        try:
            parsed = check_url_syntax(url, ALL)
        except UrlRejected:
            continue
        assert parsed.scheme in ("http", "https")
        assert 1 <= parsed.port <= 65535


# --- resolution ------------------------------------------------------------------------------


async def test_public_host_resolves_and_passes() -> None:
    resolver = FakeResolver(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
    addresses = await resolve_and_check("https://example.com:8443/hook", PROD, resolver=resolver)
    assert addresses == [ip("93.184.216.34"), ip("2606:2800:220:1:248:1893:25c8:1946")]
    assert resolver.calls == [("example.com", 8443)]


async def test_resolver_gets_the_default_port_and_normalized_host() -> None:
    resolver = FakeResolver(["93.184.216.34"])
    await resolve_and_check("https://EXAMPLE.com/", PROD, resolver=resolver)
    assert resolver.calls == [("example.com", 443)]


async def test_duplicate_answers_are_collapsed() -> None:
    resolver = FakeResolver(["8.8.8.8", "8.8.8.8", "8.8.4.4"])
    assert await resolve_and_check("https://dns.example/", PROD, resolver=resolver) == [
        ip("8.8.8.8"),
        ip("8.8.4.4"),
    ]


async def test_literal_ip_is_not_resolved() -> None:
    resolver = FakeResolver(["10.0.0.1"])
    assert await resolve_and_check("https://8.8.8.8/", PROD, resolver=resolver) == [ip("8.8.8.8")]
    assert resolver.calls == []


async def test_syntax_is_checked_before_resolving() -> None:
    resolver = FakeResolver(["8.8.8.8"])
    with pytest.raises(UrlRejected) as err:
        await resolve_and_check("http://example.com/", PROD, resolver=resolver)
    assert err.value.code == "scheme_not_allowed"
    assert resolver.calls == []


RESOLVED: list[tuple[list[str], UrlPolicy, str | None]] = [
    # answers, policy, expected code (None: accepted)
    (["93.184.216.34"], PROD, None),
    (["2606:4700::1111"], PROD, None),
    (["::ffff:93.184.216.34"], PROD, None),
    (["127.0.0.1"], PROD, "private_address"),
    (["::1"], PROD, "private_address"),
    (["::ffff:127.0.0.1"], PROD, "private_address"),
    (["0.0.0.0"], ALL, "private_address"),
    (["::"], ALL, "private_address"),
    (["10.0.0.5"], PROD, "private_address"),
    (["10.0.0.5"], PRIVATE, None),
    (["100.64.12.1"], PROD, "private_address"),
    (["100.64.12.1"], PRIVATE, None),
    (["172.20.0.1"], PROD, "private_address"),
    (["192.168.10.10"], PROD, "private_address"),
    (["fd00::1"], PROD, "private_address"),
    (["fd00::1"], PRIVATE, None),
    (["fe80::1"], PROD, "private_address"),
    (["fe80::1%eth0"], PROD, "private_address"),  # getaddrinfo's scoped form
    (["fe80::1%eth0"], PRIVATE, None),
    (["169.254.169.254"], PROD, "private_address"),
    (["169.254.169.254"], PRIVATE, "private_address"),
    (["169.254.169.254"], UrlPolicy(allow_metadata=True), "private_address"),
    (["169.254.169.254"], METADATA, None),
    (["fd00:ec2::254"], PRIVATE, "private_address"),
    (["::ffff:169.254.169.254"], PRIVATE, "private_address"),
    (["224.0.0.251"], ALL, "private_address"),
    (["ff02::fb"], ALL, "private_address"),
    (["240.1.1.1"], ALL, "private_address"),
    (["2001:db8::1"], ALL, "private_address"),
    (["127.0.0.1"], DEV, None),  # https to loopback: development only
    (["127.0.0.1"], PRIVATE, "private_address"),
    # any bad address spoils the lot, in any position
    (["93.184.216.34", "10.0.0.1"], PROD, "private_address"),
    (["10.0.0.1", "93.184.216.34"], PROD, "private_address"),
    (["2606:4700::1111", "::1"], PROD, "private_address"),
    (["93.184.216.34", "169.254.169.254"], PRIVATE, "private_address"),
    (["10.0.0.1", "169.254.169.254"], METADATA, None),
    # nothing usable
    ([], PROD, "unresolvable"),
    (["not-an-ip"], PROD, "unresolvable"),
    (["93.184.216.34", "example.com"], PROD, "unresolvable"),
    (["2130706433"], PROD, "unresolvable"),  # a resolver must answer with real addresses
]


@pytest.mark.parametrize(("answers", "policy", "code"), RESOLVED)
async def test_resolved_addresses(answers: list[str], policy: UrlPolicy, code: str | None) -> None:
    resolver = FakeResolver(answers)
    url = "https://hooks.tenant.example/webhook"
    if code is None:
        addresses = await resolve_and_check(url, policy, resolver=resolver)
        assert addresses == list(dict.fromkeys(ip(a.partition("%")[0]) for a in answers))
    else:
        with pytest.raises(UrlRejected) as err:
            await resolve_and_check(url, policy, resolver=resolver)
        assert err.value.code == code


async def test_message_does_not_reveal_internal_addresses() -> None:
    resolver = FakeResolver(["10.11.12.13"])
    with pytest.raises(UrlRejected) as err:
        await resolve_and_check("https://intranet.example/", PROD, resolver=resolver)
    assert "10.11.12.13" not in str(err.value)
    assert "private" in str(err.value)


@pytest.mark.parametrize(
    "error",
    [
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
        OSError("network unreachable"),
        UnicodeError("label too long"),
    ],
)
async def test_lookup_failure_is_unresolvable(error: BaseException) -> None:
    with pytest.raises(UrlRejected) as err:
        await resolve_and_check("https://gone.example/", PROD, resolver=FakeResolver(error))
    assert err.value.code == "unresolvable"
    assert err.value.__cause__ is error


async def test_dns_rebinding_is_caught_at_delivery() -> None:
    # Public when the endpoint is created, private by the time a delivery goes out.
    resolver = FakeResolver(["93.184.216.34"], ["10.0.0.7"])
    url = "https://rebind.attacker.example/hook"
    assert await resolve_and_check(url, PROD, resolver=resolver) == [ip("93.184.216.34")]
    with pytest.raises(UrlRejected) as err:
        await resolve_and_check(url, PROD, resolver=resolver)
    assert err.value.code == "private_address"
    assert len(resolver.calls) == 2


async def test_dns_rebinding_to_metadata_and_back() -> None:
    resolver = FakeResolver(
        ["93.184.216.34"], ["169.254.169.254"], ["::ffff:169.254.169.254"], ["93.184.216.34"]
    )
    url = "https://rebind.attacker.example/hook"
    outcomes = []
    for _ in range(4):
        try:
            await resolve_and_check(url, PRIVATE, resolver=resolver)
            outcomes.append("ok")
        except UrlRejected as err:
            outcomes.append(err.code)
    assert outcomes == ["ok", "private_address", "private_address", "ok"]


async def test_http_to_localhost_in_development() -> None:
    resolver = FakeResolver(["127.0.0.1", "::1"])
    addresses = await resolve_and_check("http://localhost:8000/hook", DEV, resolver=resolver)
    assert addresses == [ip("127.0.0.1"), ip("::1")]


async def test_http_localhost_resolving_elsewhere_is_refused() -> None:
    # A hostile /etc/hosts or resolver must not turn a loopback http URL into plain http
    # across the network.
    for answers, code in [
        (["93.184.216.34"], "scheme_not_allowed"),
        (["127.0.0.1", "93.184.216.34"], "scheme_not_allowed"),
        (["10.0.0.1"], "private_address"),
    ]:
        with pytest.raises(UrlRejected) as err:
            await resolve_and_check("http://localhost/", DEV, resolver=FakeResolver(answers))
        assert err.value.code == code


async def test_https_localhost_needs_the_development_switch() -> None:
    resolver = FakeResolver(["127.0.0.1"])
    assert await resolve_and_check("https://localhost/", DEV, resolver=resolver) == [
        ip("127.0.0.1")
    ]
    with pytest.raises(UrlRejected) as err:
        await resolve_and_check("https://localhost/", PRIVATE, resolver=resolver)
    assert err.value.code == "host_not_allowed"


async def test_public_name_pointing_at_loopback() -> None:
    # e.g. *.localtest.me: https with the development switch only.
    resolver = FakeResolver(["127.0.0.1"])
    url = "https://app.localtest.me/"
    assert await resolve_and_check(url, DEV, resolver=resolver) == [ip("127.0.0.1")]
    with pytest.raises(UrlRejected) as err:
        await resolve_and_check(url, PROD, resolver=resolver)
    assert err.value.code == "private_address"


async def test_default_resolver_uses_the_system() -> None:
    # "localhost" comes from the hosts file, so this needs no network.
    addresses = await resolve_and_check("http://localhost:8080/", DEV)
    assert addresses
    assert all(classify_address(a) == "loopback" for a in addresses)
    with pytest.raises(UrlRejected):
        await resolve_and_check("https://localhost/", PROD)
