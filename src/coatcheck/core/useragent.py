"""Name a device from its ``User-Agent`` header, for lists of sessions and events.

The answer is a short "Browser on OS" meant for people ("Firefox on Windows");
it is a hint, not an identification: any client can send any header. A few
plain regular expressions, tried in order, are enough for that.
"""

from __future__ import annotations

import re

__all__ = ["UNKNOWN_DEVICE", "describe_user_agent"]

#: What an empty or unrecognised user agent is called.
UNKNOWN_DEVICE = "Unknown device"

#: Longer headers are cut before matching; real ones are a few hundred characters.
_MAX_LENGTH = 1024

# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari",
# and crawlers and scripts may claim to be anything.
_CLIENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("curl", re.compile(r"\bcurl/", re.IGNORECASE)),
    ("Wget", re.compile(r"\bWget/", re.IGNORECASE)),
    ("Python", re.compile(r"\bpython|\baiohttp/|\bhttpx/", re.IGNORECASE)),
    ("Go", re.compile(r"\bGo-http-client/")),
    ("Node.js", re.compile(r"\bnode-fetch/|\bundici\b|\baxios/", re.IGNORECASE)),
    ("Edge", re.compile(r"\bEdg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"\bOPR/|\bOPT/|\bOpera\b")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/")),
    ("Vivaldi", re.compile(r"\bVivaldi/")),
    ("Firefox", re.compile(r"\bFirefox/|\bFxiOS/")),
    ("Headless Chrome", re.compile(r"\bHeadlessChrome/")),
    ("Chrome", re.compile(r"\bChrome/|\bCriOS/|\bChromium/")),
    ("Safari", re.compile(r"\bVersion/[\d.]+.*\bSafari/|\bAppleWebKit/.*\bMobile/")),
    ("Internet Explorer", re.compile(r"\bMSIE |\bTrident/")),
)

# iOS user agents say "like Mac OS X", Android ones say "Linux": test them first.
_SYSTEMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("iOS", re.compile(r"\b(?:iPhone|iPad|iPod)\b")),
    ("Android", re.compile(r"\bAndroid\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b|\bDarwin\b")),
    ("Linux", re.compile(r"\bLinux\b|\bUbuntu\b|\bFedora\b|\bX11\b")),
    ("FreeBSD", re.compile(r"\bFreeBSD\b")),
)


def describe_user_agent(ua: str | None) -> str:
    """Return a short description of the device behind a ``User-Agent`` header.

    ``"Firefox on Windows"``, ``"Safari on iOS"``, ``"curl"`` (a client
    without a system), ``"Unknown browser on Linux"`` (a system without a
    known client), and :data:`UNKNOWN_DEVICE` when nothing is recognised.
    """
    if not ua or not ua.strip():
        return UNKNOWN_DEVICE
    text = ua[:_MAX_LENGTH]
    client = _first_match(_CLIENTS, text)
    system = _first_match(_SYSTEMS, text)
    if client and system:
        return f"{client} on {system}"
    if client:
        return client
    if system:
        return f"Unknown browser on {system}"
    return UNKNOWN_DEVICE


def _first_match(patterns: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> str | None:
    for name, pattern in patterns:
        if pattern.search(text):
            return name
    return None
