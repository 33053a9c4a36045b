"""normalize_url / detect_platform / find_meeting_link: forms, wrappers, traps, properties."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from showup.meetings import (
    MAX_SCAN_CHARS,
    MeetingLink,
    detect_platform,
    find_meeting_link,
    normalize_url,
)

TEAMS_THREAD = "19:meeting_MjM2NzczMmEtMmRiNi00MGNh@thread.v2"
TEAMS = (
    f"https://teams.microsoft.com/l/meetup-join/{TEAMS_THREAD}/0"
    "?context=%7B%22Tid%22%3A%22t-1%22%2C%22Oid%22%3A%22o-2%22%7D"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Zoom: vanity hosts, zoom.com, ZoomGov, start/web-client/confno forms, only pwd and tk
        ("https://acme.zoom.us/j/85001833920?pwd=Ab.1&uname=Bo&utm_source=x#success",
         "https://acme.zoom.us/j/85001833920?pwd=Ab.1"),
        ("https://us05web.zoom.com/w/987654321?tk=T.k&pwd=p",
         "https://us05web.zoom.us/w/987654321?pwd=p&tk=T.k"),
        ("https://agency.zoomgov.com/j/1612345678", "https://agency.zoomgov.com/j/1612345678"),
        ("https://zoom.us/s/85001833920?zak=HOST-SECRET", "https://zoom.us/j/85001833920"),
        ("https://app.zoom.us/wc/79642156509/start?fromPWA=1&pwd=x",
         "https://app.zoom.us/j/79642156509?pwd=x"),
        ("https://zoom.us/wc/join/12345678901", "https://zoom.us/j/12345678901"),
        ("https://zoom.us/join?confno=987654321&pwd=s", "https://zoom.us/j/987654321?pwd=s"),
        ("zoommtg://zoom.us/join?confno=123456789&pwd=x&uname=B", "https://zoom.us/j/123456789?pwd=x"),
        ("https://turing.zoom.us/my/Marco.Santos", "https://turing.zoom.us/my/Marco.Santos"),
        ("http://WWW.ZOOM.US/j/123456789", "https://zoom.us/j/123456789"),
        ("zoom.us/j/123456789", "https://zoom.us/j/123456789"),
        # Meet: code lower-cased, every parameter dropped, /_meet/ and g.co/meet forms
        ("https://meet.google.com/ABC-DEFG-HIJ?authuser=2&hs=122", "https://meet.google.com/abc-defg-hij"),
        ("https://meet.google.com/_meet/abc-defg-hij?ijlm=1", "https://meet.google.com/abc-defg-hij"),
        ("https://g.co/meet/abc-defg-hij", "https://meet.google.com/abc-defg-hij"),
        # Teams: thread id decoded, context re-encoded, anon/deeplink noise dropped
        (TEAMS.replace(":", "%3a", 1).replace("@", "%40") + "&anon=true", TEAMS),
        ("https://teams.microsoft.com/meet/33749853217630?p=em7xplMpIFquiFGvn8&anon=true",
         "https://teams.microsoft.com/meet/33749853217630?p=em7xplMpIFquiFGvn8"),
        ("https://teams.microsoft.com/v2/?meetingjoin=true#/meet/33749853217630?p=Xy&anon=true",
         "https://teams.microsoft.com/meet/33749853217630?p=Xy"),
        ("https://teams.microsoft.com/_#/l/meetup-join/" + quote(TEAMS_THREAD, safe="") + "/0",
         f"https://teams.microsoft.com/l/meetup-join/{TEAMS_THREAD}/0"),
        ("https://teams.microsoft.com/dl/launcher/launcher.html?url="
         + quote("/_#/l/meetup-join/" + quote(TEAMS_THREAD, safe="") + "/0?context=%7B%7D", safe="")
         + "&type=meetup-join&directDl=true",
         f"https://teams.microsoft.com/l/meetup-join/{TEAMS_THREAD}/0?context=%7B%7D"),
        ("https://gov.teams.microsoft.us/meet/12345678901234", "https://gov.teams.microsoft.us/meet/12345678901234"),
        ("https://dod.teams.microsoft.us/l/meetup-join/19:x@thread.v2/0",
         "https://dod.teams.microsoft.us/l/meetup-join/19:x@thread.v2/0"),
        ("https://teams.live.com/meet/9361792952021?p=abc", "https://teams.live.com/meet/9361792952021?p=abc"),
        ("https://teams.cloud.microsoft/meet/9361792952021?p=abc",
         "https://teams.cloud.microsoft/meet/9361792952021?p=abc"),
        # others of the ten
        ("https://acme.webex.com/acme/j.php?MTID=m1234abcd&utm_campaign=x",
         "https://acme.webex.com/acme/j.php?MTID=m1234abcd"),
        ("https://acme.webex.com/meet/jane.doe", "https://acme.webex.com/meet/jane.doe"),
        ("https://global.gotomeeting.com/join/123456789?x=1", "https://global.gotomeeting.com/join/123456789"),
        ("https://meet.goto.com/123456789", "https://meet.goto.com/123456789"),
        ("https://bluejeans.com/123456789/4321", "https://bluejeans.com/123456789/4321"),
        ("https://whereby.com/team-room?roomKey=HOST-SECRET", "https://whereby.com/team-room"),
        ("https://chime.aws/1234567890", "https://chime.aws/1234567890"),
        ("https://meet.jit.si/Team%20Sync/#config.startWithAudioMuted=true",
         "https://meet.jit.si/Team%20Sync"),
        ("https://app.slack.com/huddle/T01ABCDEFGH/C02ABCDEFGH", "https://app.slack.com/huddle/T01ABCDEFGH/C02ABCDEFGH"),
        # long tail: kept as given, fragment included (FaceTime's key lives there)
        ("https://facetime.apple.com/join#v=1&p=AeVK&k=FrCN", "https://facetime.apple.com/join#v=1&p=AeVK&k=FrCN"),
        # wrappers
        ("https://nam11.safelinks.protection.outlook.com/?url=https%3A%2F%2Fzoom.us%2Fj%2F123456789"
         "%3Fpwd%3Dab&data=x&sdata=y&reserved=0", "https://zoom.us/j/123456789?pwd=ab"),
        ("https://www.google.com/url?q=https://meet.google.com/abc-defg-hij&sa=D&usg=x",
         "https://meet.google.com/abc-defg-hij"),
        ("https://urldefense.proofpoint.com/v2/url?u=https-3A__zoom.us_j_123456789&d=x",
         "https://zoom.us/j/123456789"),
        ("https%3A%2F%2Fzoom.us%2Fj%2F123456789", "https://zoom.us/j/123456789"),
        ("<https://zoom.us/j/123456789?pwd=a&amp;uname=b>.", "https://zoom.us/j/123456789?pwd=a"),
    ],
)  # fmt: skip
def test_normalize_url(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected
    assert normalize_url(expected) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "", "   ", "not a url", "tel:+15550100", "mailto:a@zoom.us", "sip:123@zoom.us",
        "https://zoom.us/", "https://zoom.us/j/", "https://zoom.us/j/abc",
        "https://zoom.us/j/123456789012",  # longer than any Zoom id
        "https://events.zoom.us/ev/abc123", "https://zoom.us/webinar/register/WN_abc",
        "https://zoom.us:8443/j/123456789",
        "https://meet.google.com/", "https://meet.google.com/lookup/c2dhdn5hqs",
        "https://meet.google.com/landing", "https://stream.meet.google.com/abc-defg-hij",
        "https://teams.microsoft.com/", "https://teams.microsoft.com/l/channel/19:x/General",
        "https://teams.microsoft.com/l/meeting/new", "https://teams.microsoft.com/meet/channel?p=x",
        "https://teams.microsoft.com/meetingOptions/?organizerId=x",
        "https://acme.webex.com/acme/ldr.php?RCID=1", "https://www.webex.com/downloads.html",
        "https://whereby.com/information", "https://meet.jit.si/", "https://meet.jit.si/a/b",
        # look-alikes
        "https://zoom.us.evil.com/j/123456789", "https://evilzoom.us/j/123456789",
        "https://zoom.us@evil.com/j/123456789", "https://evil.com/zoom.us/j/123456789",
        "https://evil.com/?next=https://zoom.us/j/123456789",
        "https://meet.google.com.evil.com/abc-defg-hij", "https://notteams.microsoft.com.io/meet/1?p=x",
        "https://z\u043e\u043em.us/j/123456789",  # Cyrillic o
        "https://nam11.safelinks.protection.outlook.com/?url=https://nam11.safelinks.protection"
        ".outlook.com/?url=x",
        "https://nam11.safelinks.protection.outlook.com/?url=https%3A%2F%2Fzoom.us%2Fj%2F1%xx",
    ],
)  # fmt: skip
def test_not_a_join_link(raw: str) -> None:
    assert normalize_url(raw) is None
    assert detect_platform(raw) is None
    assert find_meeting_link(raw) is None


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("https://teams.zoom.us/j/123456", "zoom"),  # a Zoom vanity host named "teams"
        ("https://frbmeetings.zoomgov.com/j/12345678901", "zoom"),
        ("https://gov.teams.microsoft.us/meet/1234567890123", "microsoft_teams"),
        ("https://global.gotomeeting.com/join/123456789", "goto_meeting"),
        ("https://meet.example.org/TeamSync", "jitsi"),  # standalone: self-hosted Jitsi guess
        ("https://stream.meet.google.com/stream/abc-123", "google_meet_stream"),
        ("https://go.userzoom.com/participate/abc-123", "userzoom"),
    ],
)
def test_detect_platform(url: str, platform: str) -> None:
    assert detect_platform(url) == platform


def test_a_candidate_with_a_space_is_not_a_url_but_prose_still_scans() -> None:
    assert normalize_url("https://meet.jit.si/My Room") is None
    link = find_meeting_link("https://meet.jit.si/My Room")  # prose: "…/My" then a word
    assert link == MeetingLink("https://meet.jit.si/My", "jitsi")


def test_self_hosted_jitsi_guess_is_only_for_standalone_links() -> None:
    assert find_meeting_link("https://meet.example.org/Weekly") is not None
    assert find_meeting_link("agenda: https://meet.example.org/Weekly") is None
    assert find_meeting_link("Dial in at zoom.us/j/123456789") is None  # scheme-less in prose


@pytest.mark.parametrize(
    "text",
    [
        "Dial +1 646 558 8656, Meeting ID: 850 0183 3920, Passcode: 123456",
        "tel:+16465588656,,85001833920#",
        "Join by phone\n+1 425-555-0123,,177513992# United States\nConference ID: 177 513 992#",
        '<p>Phone: <a href="tel:+14255550123">+1 425 555 0123</a></p>',
    ],
)
def test_dial_in_text_is_not_a_link(text: str) -> None:
    assert find_meeting_link(text) is None


def test_first_join_link_wins_and_others_are_skipped() -> None:
    text = (
        "Docs https://docs.example.com/x and https://zoom.us/download then "
        "https://meet.google.com/abc-defg-hij or https://zoom.us/j/123456789"
    )
    assert find_meeting_link(text) == MeetingLink(
        "https://meet.google.com/abc-defg-hij", "google_meet"
    )
    assert find_meeting_link(None, "", "no link", text, "https://zoom.us/j/1") == (
        find_meeting_link(text)
    )


def test_a_later_copy_with_the_passcode_is_preferred() -> None:
    text = "Short: https://zoom.us/j/123456789\nFull: https://zoom.us/j/123456789?pwd=abc"
    assert find_meeting_link(text) == MeetingLink("https://zoom.us/j/123456789?pwd=abc", "zoom")
    # ... but not a different meeting
    other = "https://zoom.us/j/123456789 and https://zoom.us/j/987654321?pwd=abc"
    assert find_meeting_link(other) == MeetingLink("https://zoom.us/j/123456789", "zoom")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Join <https://zoom.us/j/123456789>", "https://zoom.us/j/123456789"),
        ("[Join](https://zoom.us/j/123456789).", "https://zoom.us/j/123456789"),
        ('"https://zoom.us/j/123456789",', "https://zoom.us/j/123456789"),
        ("(https://zoom.us/j/123456789?pwd=a)", "https://zoom.us/j/123456789?pwd=a"),
        ("https://zoom.us/j/88240852079(Passcode: 584706)", "https://zoom.us/j/88240852079"),
        ("<p>&#x68;&#x74;&#x74;&#x70;&#x73;://zoom.us/j/123456789</p>", "https://zoom.us/j/123456789"),
        ('<a href="https://zoom.us/j/123456789?pwd=a&amp;uname=x">Join</a>',
         "https://zoom.us/j/123456789?pwd=a"),
        ("<div>https://zoom.us/j/123456789?pwd=aB3dE5fG7hJ9kL1mN3pQ5rS7tU9.1<br>Passcode: 1</div>",
         "https://zoom.us/j/123456789?pwd=aB3dE5fG7hJ9kL1mN3pQ5rS7tU9.1"),
        ("https://zoom.us/j/123456789?pwd=aB3dE5fG7hJ9kL1mN3pQ5rS7tU9.1Passcode: 1",
         "https://zoom.us/j/123456789?pwd=aB3dE5fG7hJ9kL1mN3pQ5rS7tU9.1"),
        # a commented-out link is not shown to anyone: skipped
        ("<!-- https://zoom.us/j/111111111 old link --> https://zoom.us/j/123456789",
         "https://zoom.us/j/123456789"),
        ("Use HTTPS://ZOOM.US/j/123456789 to join", "https://zoom.us/j/123456789"),
    ],
)  # fmt: skip
def test_find_in_text_forms(text: str, expected: str) -> None:
    link = find_meeting_link(text)
    assert link is not None and link.url == expected


def test_scan_is_capped() -> None:
    filler = "x " * (MAX_SCAN_CHARS // 2)
    assert find_meeting_link(filler + "https://zoom.us/j/123456789") is None
    assert find_meeting_link("https://zoom.us/j/123456789 " + filler) is not None


@pytest.mark.parametrize(
    "text",
    [
        "<" * MAX_SCAN_CHARS,
        "<a href=" * (MAX_SCAN_CHARS // 8),
        "https://" * (MAX_SCAN_CHARS // 8),
        "https://zoom.us/j/1?" + "&" * MAX_SCAN_CHARS,
        "&#x68;" * (MAX_SCAN_CHARS // 6),
        "https://teams.microsoft.com/l/meetup-join/" + "%25" * (MAX_SCAN_CHARS // 3),
        ")" * MAX_SCAN_CHARS,
        "https://zoom.us/j/1" + "." * MAX_SCAN_CHARS,
        "https://" + "a" * MAX_SCAN_CHARS,
        "https://zoom.us/j/1 " * (MAX_SCAN_CHARS // 20),
        ")" * 8000,  # a standalone token with unbalanced brackets
    ],
)
def test_pathological_input_stays_fast(text: str) -> None:
    started = time.perf_counter()
    find_meeting_link(text)
    assert time.perf_counter() - started < 1.0


# --- properties -----------------------------------------------------------------------------

_SEEDS = [
    "https://zoom.us/j/123456789?pwd=abc",
    "https://acme.zoom.com/my/jane",
    "zoommtg://zoom.us/join?confno=123456789",
    "https://meet.google.com/abc-defg-hij",
    TEAMS,
    "https://teams.live.com/meet/9361792952021?p=abc",
    "https://acme.webex.com/acme/j.php?MTID=m1",
    "https://meet.jit.si/Room",
    "https://meet.example.org/Room",
    "https://whereby.com/room",
    "https://facetime.apple.com/join#v=1&p=x",
    "https://app.gather.town/app/a/b%20c?spawnToken=x",
    "https://nam11.safelinks.protection.outlook.com/?url=https%3A%2F%2Fzoom.us%2Fj%2F123456789",
]
_URL_CHARS = st.text(alphabet=st.sampled_from("aZ09-._~:/?#[]@!$&'()*+,;=%{}\"<> \t\n"),
                     max_size=12)  # fmt: skip


@st.composite
def _url_like(draw: st.DrawFn) -> str:
    seed = draw(st.sampled_from(_SEEDS))
    if draw(st.booleans()):
        seed = "".join(c.upper() if draw(st.booleans()) else c for c in seed)
    cut = draw(st.integers(0, len(seed)))
    return draw(_URL_CHARS) + seed[:cut] + draw(_URL_CHARS) + seed[cut:] + draw(_URL_CHARS)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_url_like(), st.sampled_from(_SEEDS), st.text(max_size=80)))
def test_normalize_url_is_idempotent(raw: str) -> None:
    normalized = normalize_url(raw)
    if normalized is not None:
        assert normalize_url(normalized) == normalized
        assert detect_platform(normalized) == detect_platform(raw)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(), _url_like()), max_size=4))
def test_find_meeting_link_never_raises_and_returns_fixed_points(texts: list[str | None]) -> None:
    link = find_meeting_link(*texts)
    if link is not None:
        assert normalize_url(link.url) == link.url
        assert detect_platform(link.url) == link.platform
