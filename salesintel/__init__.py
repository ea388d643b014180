"""salesintel's import namespace.

The repository keeps one folder per concern at its top level (`engine/`, `alerts/`, `bot/`, `templates/`); installed,
they are `salesintel.engine`, `salesintel.alerts`, `salesintel.bot` and `salesintel.templates` (the package-dir
mapping in `pyproject.toml`), so they never collide with other packages of those names.
"""
