"""Finding one deal's answer in a refresh from what a person typed: `D12345`, ` d12345 `, a pasted CRM URL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

from salesintel.engine.records import ScoredDeal
from salesintel.engine.store import Refresh, Snapshot, Store

DEAL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class DealLookupError(Exception):
    """The id is malformed, unknown, or not open at the date; the message is fit to show a user as is.

    `typed` is the id as parsed (None when the text is no id at all); `owner` is the deal's rep when the deal exists,
    so a caller can keep what the message says about it from people who may not see it."""

    def __init__(self, message: str, typed: str | None = None, owner: str | None = None):
        super().__init__(message)
        self.typed, self.owner = typed, owner


@dataclass(frozen=True)
class DealAnswer:
    score: ScoredDeal
    deal: dict
    refresh: Refresh
    snapshot: Snapshot


def parse_deal_id(text: str) -> str:
    """The deal id inside `text`; Slack's `<url|label>` wrapping, URLs and stray spaces are peeled off."""
    cleaned = text.strip().strip("<>").split("|")[0].strip()
    if "://" in cleaned or cleaned.count("/") > 0:
        path = urlparse(cleaned).path if "://" in cleaned else cleaned
        segments = [segment for segment in path.split("/") if segment and segment.lower() != "view"]
        cleaned = segments[-1] if segments else ""
    cleaned = re.sub(r"\s+", "", cleaned)
    if not DEAL_ID_PATTERN.match(cleaned):
        shown = text.strip() or "(nothing)"
        raise DealLookupError(f"'{shown}' is not a deal id; try one like D01234")
    return cleaned


def look_up(store: Store, refresh: Refresh, text: str) -> DealAnswer:
    """The stored score of the deal named by `text` in `refresh`, or a `DealLookupError` saying why not."""
    snapshot = store.snapshot(refresh.snapshot_id)
    typed = parse_deal_id(text)
    deal_id = store.find_deal_id(snapshot.id, typed)
    if deal_id is None:
        raise DealLookupError(
            f"no deal {typed} in the snapshot of {snapshot.taken_at:%Y-%m-%d} (#{snapshot.id})", typed
        )
    deal = store.deal(snapshot.id, deal_id)
    score = store.score(refresh.id, deal_id)
    if score is None:
        as_of = refresh.as_of.isoformat()
        if deal["created_date"] > as_of:
            raise DealLookupError(
                f"{deal_id} was created on {deal['created_date']}, after {as_of}", typed, deal["sales_rep_id"]
            )
        raise DealLookupError(
            f"{deal_id} is not in the open pipeline as of {as_of}: "
            f"it closed {deal['outcome']} on {deal['closed_date']}",
            typed,
            deal["sales_rep_id"],
        )
    return DealAnswer(score, deal, refresh, snapshot)
