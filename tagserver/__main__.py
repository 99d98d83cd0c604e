from __future__ import annotations

from tagserver.cli import main

raise SystemExit(main())
