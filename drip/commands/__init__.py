"""Command modules; each has `register(app: typer.Typer) -> None`. One module per area, one owner each."""

from drip.commands import (
    api_tokens, attributes, audit, backup, bench, bounces, broadcast, campaigns, content, draft_tools, enrollments,
    migrate, retention, run, serve, signup, split, staff, stats, step_rules, subscribers, webhooks,
)

COMMAND_MODULES = [split, content, campaigns, subscribers, broadcast, run, serve, bench, staff, api_tokens, backup,
                   migrate, signup, enrollments, attributes, retention, webhooks, audit, bounces, draft_tools,
                   step_rules, stats]
