"""Recommended next steps for an at-risk deal, chosen by what makes it risky."""

from __future__ import annotations

from collections.abc import Sequence

from salesintel.engine.records import Reason

GENERIC = "No single cause stands out: review the next step and the close plan with the owner this week."


def recommended_actions(reasons: Sequence[Reason], stalled_detail: str | None = None, stale: bool = False) -> list[str]:
    """Up to three concrete steps from what lowers the deal's chances beyond chance; a generic step otherwise."""
    steps = []
    if stale:
        steps.append("Close it out in the CRM, or re-qualify it with the buyer this week if it is really alive.")
    if stalled_detail:
        steps.append("Move it forward or close it out: agree a dated next step with the buyer.")
    for reason in reasons:
        if not reason.significant or reason.effect >= 0:
            continue
        dimension, level = reason.dimension, reason.level
        if dimension == "age":
            steps.append("Re-qualify this week: confirm the decision maker, budget and a close date.")
        elif dimension == "amount_band":
            steps.append("Bring in an executive sponsor and map the buying committee.")
        elif dimension == "lead_source":
            steps.append(f"{level} deals convert less: confirm the pain and a champion before investing more time.")
        elif dimension == "sales_rep_id":
            steps.append("Ask the manager to join the next call.")
        else:
            about = reason.label or level
            steps.append(f"Look at how recent deals like this one ({about}) were won and lost, and reuse what worked.")
    if not steps:
        steps.append(GENERIC)
    return list(dict.fromkeys(steps))[:3]
