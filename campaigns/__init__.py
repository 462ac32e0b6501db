"""Campaigns: document -> steps (splitter), campaign and step definitions, rendering, schedule arithmetic."""
