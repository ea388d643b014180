"""Database URLs in logs, errors, `/healthz`, snapshots' source and Slack messages never show a password."""

from __future__ import annotations

import pytest

from salesintel.engine.store import Store, StoreError
from salesintel.engine.url_redaction import redact_url, scrub


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://u:hunter2@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:hun@ter2@db/x?sslmode=require", "postgresql://u:***@db/x?sslmode=require"),
        ("postgresql://u:hun%zzter2@db/x", "postgresql://u:***@db/x"),
        (
            "postgresql://u@db/x?password=hunter2&application_name=a",
            "postgresql://u@db/x?password=***&application_name=a",
        ),
        ("postgresql://db?PASSWORD=hunter2", "postgresql://db?PASSWORD=***"),
        ("snowflake://u:hunter2@acct/db/schema?warehouse=w", "snowflake://u:***@acct/db/schema?warehouse=w"),
        (
            "bigquery://project/dataset?credentials_base64=aHVudGVyMg",
            "bigquery://project/dataset?credentials_base64=***",
        ),
        ("postgresql://salesintel@/postgres?host=%2Ftmp%2Fs", "postgresql://salesintel@/postgres?host=%2Ftmp%2Fs"),
    ],
)
def test_a_url_is_shown_without_its_secrets(url, shown):
    assert redact_url(url) == shown
    message = f'driver said: cannot connect with "{url}" (password "hunter2" refused)'
    assert "hunter2" not in scrub(message, url) or "hunter2" not in url, "a secret in the URL is scrubbed from text"


def test_a_store_url_the_driver_cannot_parse_is_refused_without_echoing_its_password():
    url = "postgresql://salesintel:hun%zzter2@nowhere.invalid/db"
    with pytest.raises(StoreError) as raised:
        Store.open(url)
    assert "hun%zzter2" not in str(raised.value) and "salesintel:***@nowhere.invalid" in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__, "the driver's error is not chained"
