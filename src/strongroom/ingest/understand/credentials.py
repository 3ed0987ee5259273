"""Credentials in text, found by Yelp's maintained ``detect-secrets`` plugins and located for redaction.

detect-secrets (Apache-2.0) knows the shapes of vendor keys and tokens (AWS, Slack, GitHub,
GitLab, Stripe, SendGrid, Twilio, JWT, ...), the labelled-secret forms of config files and
code (``password: x``, ``db_password=x``, ``"password": "x"``, ``pwd := x``) and the entropy
of quoted random strings. Its plugins answer per line with the secret's value; here their
own patterns run over the whole text so that every finding has an exact span, and a few
forms it does not cover are added: PEM blocks of every kind (``ENCRYPTED PRIVATE KEY``,
a block cut by a page break), ``Authorization: Bearer`` values, Azure SAS signatures,
labelled AWS secret access keys without quotes, current Slack/GitHub/Stripe/Google token
prefixes, and labelled passwords that start with a symbol.

Text already redacted reaches these detectors with each ``[REDACTED:TYPE]`` marker masked as
``[#####]`` (see :func:`strongroom.ingest.understand.pii.detect_text`), so a marker is never read as
a label or a value and redacting twice changes nothing.

Limits, so that filings do not light up: the entropy plugins see quoted strings only (an
unquoted hash, CUSIP or accession number in an exhibit list is not a credential), of at
least 20 characters, above detect-secrets' own limits (4.5 bits base64, 3.0 bits hex).
Every detector runs only on text that holds one of its literal hints (checked once on the
lower-cased text), and the keyword patterns only on lines with a keyword, so a 10-Q costs
a few milliseconds.

    >>> [(t, s, e) for t, s, e, _ in credentials("db_password=hunter2")]
    [('password', 12, 19)]
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from detect_secrets.plugins import keyword as ds_keyword
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import (
    Base64HighEntropyString,
    HexHighEntropyString,
    HighEntropyStringsPlugin,
)
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from strongroom.ingest.understand.identifiers import Raw
from strongroom.ingest.understand.policy import FindingType

__all__ = ["MIN_ENTROPY_LENGTH", "credentials", "private_keys"]

MIN_ENTROPY_LENGTH = 20

# Hints: literals, one of which the lower-cased text must hold, or a pattern it must match.
_Hints = tuple[str, ...] | re.Pattern[str]
_Pattern = tuple[re.Pattern[str], FindingType, float, _Hints]


def _plugin(detector: RegexBasedDetector, kind: FindingType, confidence: float, hints: _Hints) -> list[_Pattern]:
    return [(pattern, kind, confidence, hints) for pattern in detector.denylist]


_JWT = tuple(JwtTokenDetector().denylist)


def _own(pattern: str, kind: FindingType, confidence: float, hints: _Hints, flags: int = 0) -> _Pattern:
    return re.compile(pattern, flags), kind, confidence, hints


def _hint(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# (pattern, type, confidence, hints): a pattern runs only on text whose lower-cased form has a hint.
# A pattern with groups locates the secret by its first non-empty group, as detect-secrets reports it.
_PATTERNS: tuple[_Pattern, ...] = (
    *_plugin(AWSKeyDetector(), "api_key", 0.95, ("a3t", "abia", "acca", "akia", "asia", "aws")),
    *_plugin(SlackDetector(), "access_token", 0.95, ("xox", "hooks.slack.com")),
    *_plugin(GitHubTokenDetector(), "access_token", 0.95, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    *_plugin(
        GitLabTokenDetector(), "access_token", 0.95, _hint(r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-|gr1348941")
    ),
    *_plugin(StripeDetector(), "api_key", 0.95, ("k_live_",)),
    *_plugin(AzureStorageKeyDetector(), "connection_string", 0.95, ("accountkey=",)),
    *_plugin(BasicAuthDetector(), "password", 0.9, ("://",)),
    *_plugin(JwtTokenDetector(), "access_token", 0.9, ("eyj",)),
    *_plugin(ArtifactoryDetector(), "api_key", 0.8, _hint(r"akc[a-z0-9]{10}|ap[0-9a-f][a-z0-9]{8}")),
    *_plugin(
        CloudantDetector(), "api_key", 0.85, _hint(r"cl(?:oudant|ou)?[_-]?(?:api)?(?:key|pw|pass|token)|cloudant\.com")
    ),
    *_plugin(DiscordBotTokenDetector(), "access_token", 0.85, _hint(r"\.[a-z0-9_-]{6}\.")),
    *_plugin(
        IbmCloudIamDetector(), "api_key", 0.85, _hint(r"(?:key|pwd|pass|token)[\"'\]]{0,2} *(?:[=:]|[a-z0-9_-]{44})")
    ),
    *_plugin(IbmCosHmacDetector(), "api_key", 0.85, ("secret",)),
    *_plugin(MailchimpDetector(), "api_key", 0.85, ("-us",)),
    *_plugin(NpmDetector(), "access_token", 0.9, ("_authtoken",)),
    *_plugin(OpenAIDetector(), "api_key", 0.95, ("t3blbkfj",)),
    *_plugin(PypiTokenDetector(), "api_key", 0.95, ("pypi-",)),
    *_plugin(SendGridDetector(), "api_key", 0.95, ("sg.",)),
    *_plugin(SoftlayerDetector(), "api_key", 0.85, _hint(r"(?:softlayer|sl)[_-]?(?:api)?[_-]?(?:key|pwd|pass|token)")),
    *_plugin(SquareOAuthDetector(), "api_key", 0.95, ("sq0csp-",)),
    *_plugin(TelegramBotTokenDetector(), "access_token", 0.85, _hint(r":[a-z0-9_-]{35}")),
    *_plugin(TwilioKeyDetector(), "api_key", 0.85, ("ac", "sk")),
    # Forms detect-secrets 1.5 does not know.
    _own(
        r"\bauthorization\b[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest|negotiate|apikey)\s+)?"
        r"([^\s\"',;]{6,})",
        "access_token",
        0.95,
        ("authorization",),
        re.IGNORECASE,
    ),
    _own(r"\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)", "access_token", 0.9, ("bearer",), re.IGNORECASE),
    _own(
        r"aws.{0,20}?(?:secret|key).{0,20}?[=:\s][\s\"']*([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        "api_key",
        0.95,
        ("aws",),
        re.IGNORECASE,
    ),
    _own(
        r"\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|SharedSecret)\s*=\s*([^;\s\"']+)",
        "connection_string",
        0.95,
        ("accountkey", "sharedaccess", "sharedsecret"),
        re.IGNORECASE,
    ),
    _own(r"[?&;]sig=([A-Za-z0-9%+/=]{16,})", "connection_string", 0.9, ("sig=",)),
    _own(r"\bjdbc:oracle:[a-z]+:[^/\s@:]+/([^@\s]+)@", "password", 0.9, ("jdbc:oracle",)),
    _own(r"\bxox[a-z]-[A-Za-z0-9-]{10,}", "access_token", 0.95, ("xox",)),
    _own(r"\bxoxe\.xox[a-z]-[A-Za-z0-9-]{10,}", "access_token", 0.95, ("xoxe",)),
    _own(r"\bxapp-\d-[A-Za-z0-9-]{10,}", "access_token", 0.95, ("xapp-",)),
    _own(r"\bgh[pousr]_[A-Za-z0-9]{30,}", "access_token", 0.95, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    _own(r"\bgithub_pat_[A-Za-z0-9_]{22,}", "access_token", 0.95, ("github_pat_",)),
    _own(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{10,}", "api_key", 0.95, ("k_live_", "k_test_")),
    _own(r"\bwhsec_[A-Za-z0-9]{20,}", "api_key", 0.95, ("whsec_",)),
    _own(r"\bAIza[0-9A-Za-z_\-]{35}", "api_key", 0.95, ("aiza",)),
    _own(r"\bGOCSPX-[A-Za-z0-9_\-]{20,}", "api_key", 0.95, ("gocspx-",)),
    _own(r"\bya29\.[0-9A-Za-z_\-]{20,}", "access_token", 0.9, ("ya29.",)),
    _own(r"\bsk-[A-Za-z0-9_\-]{20,}", "api_key", 0.85, ("sk-",)),
    _own(
        # A labelled password whose value detect-secrets' keyword patterns refuse (it starts with a
        # symbol) or whose label it does not list (pass, pw, passphrase, passcode, PIN).
        r"(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_-])*(?:pass(?:word|wd|phrase|code)?|pwd|pw|pin)(?:[_-][A-Za-z0-9]+)*"
        r"[\"'\]]{0,2}[ \t]*(?::=|=>|=|:)[ \t]*(?:([\"'`])(?!\[#)([^\"'`\n]+)\1|(?!\[#)([^\s\"'`]+))",
        "password",
        0.85,
        _hint(r"(?:pass|pw|pin)[a-z0-9_-]*[\"'\]]{0,2}[ \t]*[:=]"),
        re.IGNORECASE,
    ),
)

# detect-secrets' keyword patterns for every file type it knows (config, code, Go, C, ...).
_KEYWORD_PATTERNS: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    {
        pattern: group
        for table in (*ds_keyword.REGEX_BY_FILETYPE.values(), ds_keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
        for pattern, group in table.items()
    }.items()
)
_KEYWORD_HINTS = ("key", "pass", "pwd", "secret", "contrase")
_ASSIGNS = re.compile(r"[:=(\"'`]")
_PASSWORD_WORDS = re.compile(r"pass|pwd|contrase", re.IGNORECASE)
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=")

_PRIVATE_KEY_MARKERS = tuple(PrivateKeyDetector().denylist)
_ENTROPY: tuple[tuple[HighEntropyStringsPlugin, float], ...] = (
    (Base64HighEntropyString(), 0.7),
    (HexHighEntropyString(), 0.7),
)

_KEY_HEAD = re.compile(r"-{4,5} ?BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}")
_KEY_TAIL = re.compile(r"-{4,5} ?END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}")
# A line of a key's body: base64 (spaces allowed), blank, or a header (Proc-Type:, DEK-Info:, Comment:).
_KEY_LINE = re.compile(r"[ \t]*(?:[A-Za-z0-9+/=][A-Za-z0-9+/= \t]*|[A-Za-z][\w-]*:[^\n]*)?[ \t]*\r?")
_PUTTY = re.compile(r"PuTTY-User-Key-File-\d+:.*?(?:Private-MAC:[^\n]*|\Z)", re.DOTALL)
_KEY_SEARCH_LIMIT = 64 * 1024
_KEY_LINES_LIMIT = 2000


def _body_after(text: str, pos: int) -> int:
    """The end of the key-body lines that start at ``pos`` (the rest of the line included)."""
    for _ in range(_KEY_LINES_LIMIT):
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end < 0 else line_end
        if not _KEY_LINE.fullmatch(text, pos, line_end):
            return pos
        pos = line_end + 1
        if pos > len(text):
            return len(text)
    return pos


def _body_before(text: str, pos: int) -> int:
    """The start of the key-body lines that end at ``pos``."""
    line_start = text.rfind("\n", 0, pos) + 1
    if not _KEY_LINE.fullmatch(text, line_start, pos):
        return pos
    for _ in range(_KEY_LINES_LIMIT):
        if line_start == 0:
            return 0
        previous = text.rfind("\n", 0, line_start - 1) + 1
        if not _KEY_LINE.fullmatch(text, previous, line_start - 1):
            return line_start
        line_start = previous
    return line_start


def private_keys(text: str) -> Iterable[Raw]:
    """Private-key blocks of every kind: PEM (RSA, EC, DSA, OPENSSH, ENCRYPTED, PKCS#8), PGP, SSH2,
    PuTTY. A block without its END line (cut by a page break) runs over its body lines; an END line
    without its BEGIN takes the body lines before it."""
    lowered = text.lower()
    if "private" not in lowered and "putty" not in lowered:
        return
    heads = list(_KEY_HEAD.finditer(text))
    # detect-secrets' own key markers, for a kind the pattern above does not know (PuTTY)
    for pattern in _PRIVATE_KEY_MARKERS:
        heads.extend(m for m in pattern.finditer(text) if not any(h.start() <= m.start() < h.end() for h in heads))
    spans: list[tuple[int, int]] = []
    for head in sorted(heads, key=lambda m: m.start()):
        if spans and head.start() < spans[-1][1]:
            continue
        if head.group().startswith("PuTTY"):
            putty = _PUTTY.match(text, head.start())
            end = putty.end() if putty else head.end()
        elif tail := _KEY_TAIL.search(text, head.end(), head.end() + _KEY_SEARCH_LIMIT):
            end = tail.end()
        else:
            end = _body_after(text, head.end())
        spans.append((head.start(), end))
    for tail in _KEY_TAIL.finditer(text):
        if not any(start <= tail.start() < end for start, end in spans):
            spans.append((_body_before(text, tail.start()), tail.end()))
    for start, end in spans:
        yield "private_key", start, end, 0.99


def _group_span(m: re.Match[str]) -> tuple[int, int]:
    for index in range(1, (m.lastindex or 0) + 1):
        if m.group(index):
            return m.span(index)
    return m.span()


def _to_token_end(text: str, end: int) -> int:
    """Past the last character of the token a pattern matched the start of (detect-secrets' GitHub
    pattern takes 36 characters and its JWT pattern stops before the signature)."""
    while end < len(text) and text[end] in _TOKEN_CHARS:
        end += 1
    return end


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t\"'=:":
        start += 1
    while end > start and text[end - 1] in " \t\"'\n":
        end -= 1
    return start, end


def _labelled(text: str) -> Iterable[Raw]:
    """detect-secrets' keyword patterns on each line that holds a keyword (they may run to the end of a line)."""
    lowered = text.lower()
    lines: set[int] = set()
    for hint in _KEYWORD_HINTS:
        at = lowered.find(hint)
        while at >= 0:
            lines.add(text.rfind("\n", 0, at) + 1)
            at = lowered.find(hint, at + len(hint))
    for line_start in sorted(lines):
        line_end = text.find("\n", line_start)
        line_end = len(text) if line_end < 0 else line_end
        line = text[line_start:line_end]
        if not _ASSIGNS.search(line):  # every keyword form assigns (:, =, :=, =>), quotes or calls
            continue
        for pattern, group in _KEYWORD_PATTERNS:
            for m in pattern.finditer(line):
                value = m.group(group)
                if not value:
                    continue
                kind: FindingType = "password" if _PASSWORD_WORDS.search(m.group()) else "secret"
                start, end = _trimmed(line, *m.span(group))
                if end > start:
                    yield kind, line_start + start, line_start + end, 0.9


def _entropy(text: str) -> Iterable[Raw]:
    if '"' not in text and "'" not in text:
        return
    for plugin, confidence in _ENTROPY:
        for m in plugin.regex.finditer(text):
            value = m.group(2)
            if len(value) >= MIN_ENTROPY_LENGTH and plugin.calculate_shannon_entropy(value) > plugin.entropy_limit:
                yield "high_entropy", m.start(2), m.end(2), confidence


def _hint_pattern(hints: _Hints) -> re.Pattern[str]:
    return hints if isinstance(hints, re.Pattern) else re.compile("|".join(re.escape(h) for h in hints))


def _grouped_by_hint() -> tuple[tuple[re.Pattern[str], tuple[_Pattern, ...]], ...]:
    """The patterns grouped by hint, so that each hint is looked for once per text."""
    groups: dict[str, tuple[re.Pattern[str], list[_Pattern]]] = {}
    for entry in _PATTERNS:
        hint = _hint_pattern(entry[3])
        groups.setdefault(hint.pattern, (hint, []))[1].append(entry)
    return tuple((hint, tuple(entries)) for hint, entries in groups.values())


_BY_HINT = _grouped_by_hint()


def credentials(text: str) -> Iterable[Raw]:
    """Every credential in ``text`` as ``(type, start, end, confidence)``; overlaps are left to the caller."""
    lowered = text.lower()
    for hint, entries in _BY_HINT:
        if hint.search(lowered) is None:
            continue
        for pattern, kind, confidence, _ in entries:
            yield from _matches(text, pattern, kind, confidence)
    yield from _labelled(text)
    yield from _entropy(text)
    yield from private_keys(text)


def _matches(text: str, pattern: re.Pattern[str], kind: FindingType, confidence: float) -> Iterable[Raw]:
    for m in pattern.finditer(text):
        if pattern in _JWT and not JwtTokenDetector.is_formally_valid(m.group()):
            continue
        start, end = _trimmed(text, *_group_span(m))
        if kind in ("api_key", "access_token"):
            end = _to_token_end(text, end)
        if end > start:
            yield kind, start, end, confidence
