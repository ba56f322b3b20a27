"""DMARC aggregate reports (RFC 7489 appendix C, RFC 9990): one stage of the data flow.

unpack (files, archives, mail) -> parse (defusedxml, typed values) -> store (SQLite, rebuildable
from the files) -> summary (pass rates per domain, source and day) and unknown senders.
docs/reports.md describes the formats, the limits and the commands.
"""
