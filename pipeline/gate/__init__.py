"""The gate stage: change requests, approvals, windows: what must hold before an apply."""
