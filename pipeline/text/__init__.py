"""Text that came from a user, a file or DNS, made safe to show: the base every layer may use.

`safe` escapes control, bidi and invisible characters for a terminal, a log or JSON; `markdown`
escapes for a markdown table or a GitHub comment. Both were in render/, but errors, records,
reports and drift need them too, so they sit below everything (docs/architecture.md).
"""
