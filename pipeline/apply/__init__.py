"""The apply stage: per-client lock, stale-plan check, zone-by-zone apply, verification."""
