"""Recommended next steps for an at-risk deal, chosen by what makes it risky."""

from __future__ import annotations

GENERIC = "No single cause stands out: review the next step and the close plan with the owner this week."


def recommended_actions(reasons: list[dict], stalled_detail: str | None = None) -> list[str]:
    """Up to three concrete steps; significant reasons first, a generic step when nothing is significant."""
    steps = []
    if stalled_detail:
        steps.append("Move it forward or close it out: agree a dated next step with the buyer.")
    for reason in reasons:
        if not reason.get("significant"):
            continue
        dimension, level = reason["dimension"], reason["level"]
        if dimension == "age":
            steps.append("Re-qualify this week: confirm the decision maker, budget and a close date.")
        elif dimension == "amount_band":
            steps.append("Bring in an executive sponsor and map the buying committee.")
        elif dimension == "lead_source":
            steps.append(f"{level} deals convert less: confirm the pain and a champion before investing more time.")
        elif dimension == "sales_rep_id":
            steps.append("Ask the manager to join the next call.")
        else:
            steps.append(f"Look at how recent {level} deals were won and lost, and reuse what worked.")
    if not steps:
        steps.append(GENERIC)
    return list(dict.fromkeys(steps))[:3]
