"""CLI of long-term preservation: `dangan fixity audit` (scheduled, bounded batches, repair from the replica)."""

from __future__ import annotations
