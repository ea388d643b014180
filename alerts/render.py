"""Jinja2 rendering: templates hold the wording and layout, Python only decides what to say."""

from __future__ import annotations

from pathlib import Path

import jinja2

import templates
from alerts.formatting import FILTERS

TEMPLATE_DIR = Path(templates.__file__).parent


def environment() -> jinja2.Environment:
    """A strict environment: an undefined variable is an error, not a silently blank line."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


def render_text(name: str, **context) -> str:
    """Render a plain-text template (terminal output, Slack fallback text)."""
    return environment().get_template(name).render(**context)
