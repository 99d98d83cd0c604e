"""Server-to-server events: ``POST /api/events`` from a shop's backend or CRM, its API keys and
idempotency store, and ``tagserver import`` of offline conversions from a CSV file."""
