"""tagserver: a first-party server-side tagging server (Meta Pixel + Conversions API, GA4)."""

from __future__ import annotations

__version__ = "0.1.0"
