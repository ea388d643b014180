"""Database URLs as logs, errors, health checks and Slack messages may show them: never with a password.

A URL can carry a password in its user part (`postgresql://user:secret@host/db`, where the secret may itself hold
`@`, `:` or a bad percent escape) or in its query (`?password=…`, which libpq and SQLAlchemy both accept), and a
driver's error message may quote either. `redact_url` rewrites the URL; `scrub` removes the secrets from any text.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

SECRET_PARAMETERS = frozenset(
    {"password", "passwd", "pwd", "secret", "token", "access_token", "private_key_passphrase", "credentials_base64"}
)
"""Query parameters whose value is a secret, lower case."""

_QUERY_SECRET = re.compile(r"(?i)([?&;](?:" + "|".join(sorted(SECRET_PARAMETERS)) + r")=)[^&;#]*")


def redact_url(url: str) -> str:
    """`url` with the password after `user:` and every secret query parameter shown as `***`."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return _QUERY_SECRET.sub(r"\1***", url)
    authority, slash, tail = rest.partition("/")
    if "?" in authority and not slash:  # no path: the query starts in what looked like the authority
        authority, question, query = authority.partition("?")
        tail, slash = question + query, ""
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)  # the last @ ends the user part: a password may hold more
        user = userinfo.split(":", 1)[0]
        authority = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    return _QUERY_SECRET.sub(r"\1***", f"{scheme}://{authority}{slash}{tail}")


def secrets_in(url: str) -> list[str]:
    """The secret values in `url`, as written and percent-decoded."""
    found = []
    _, separator, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0] if separator else ""
    if "@" in authority:
        userinfo = authority.rsplit("@", 1)[0]
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    found += [match.group(0).split("=", 1)[1] for match in _QUERY_SECRET.finditer(url)]
    return [value for secret in found if secret for value in {secret, unquote(secret)}]


def scrub(text: str, url: str) -> str:
    """`text` (a driver's error message, say) with every secret of `url` replaced by `***`."""
    for secret in sorted(secrets_in(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
