"""How numbers look to a reader, decided in one place: money, percentages, rates with n and interval."""

from __future__ import annotations

from collections.abc import Mapping

from salesintel.engine.stats import Rate


def money(value: float | None) -> str:
    """$950, $12.3k, $18.9M: short enough for a Slack line, exact enough to act on."""
    if value is None:
        return "n/a"
    sign, value = ("-" if value < 0 else ""), abs(float(value))
    if value >= 1_000_000:
        return f"{sign}${value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{sign}${value / 1_000:.0f}k"
    if value >= 1_000:
        return f"{sign}${value / 1_000:.1f}k"
    return f"{sign}${value:,.0f}"


def percent(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def rate(value: Rate | Mapping | None, digits: int = 0) -> str:
    """'45% (n=4,003; 95% CI 44–47%)' — a rate is never shown without its sample size and interval."""
    if isinstance(value, Rate):
        value = value.to_dict()
    if not value or not value.get("n"):
        return "no data (n=0)"
    low, high = value["low"] * 100, value["high"] * 100
    return f"{percent(value['rate'], digits)} (n={value['n']:,}; 95% CI {low:.{digits}f}–{high:.{digits}f}%)"


def p_value(value: float | None) -> str:
    if value is None:
        return "not tested"
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


FILTERS = {"money": money, "percent": percent, "number": number, "rate": rate, "p_value": p_value}
"""Registered on every Jinja environment, so templates format numbers the same way everywhere."""
