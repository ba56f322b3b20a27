"""Tag=value lists (RFC 6376 3.2): the syntax of DMARC, DKIM, BIMI, MTA-STS and TLS-RPT records."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.diff.errors import RecordSyntaxError


@dataclass(frozen=True)
class Tag:
    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


def parse_tag_list(text: str, code: str, *, lower_names: bool = False) -> tuple[Tag, ...]:
    """Split `a=1; b=2;` into tags, in order.

    RFC 6376 3.2: whitespace around tags and `=` is allowed, a trailing `;` is allowed, and a
    tag-list with a duplicate tag name is invalid as a whole. `code` is the rule reported when the
    text is not a tag-list at all.
    """
    tags: list[Tag] = []
    seen: set[str] = set()
    for spec in text.split(";"):
        if not spec.strip():
            continue
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise RecordSyntaxError(f"'{spec.strip()}' is not a tag=value pair", code)
        if lower_names:
            name = name.lower()
        if name in seen:
            raise RecordSyntaxError(
                f"tag '{name}' appears twice; receivers reject the record", code
            )
        seen.add(name)
        tags.append(Tag(name, value.strip()))
    return tuple(tags)


def tag_value(tags: tuple[Tag, ...], name: str) -> str | None:
    return next((t.value for t in tags if t.name == name), None)


def require_version(tags: tuple[Tag, ...], version: str, code: str) -> None:
    """The first tag must be exactly `v=<version>` (DMARC, BIMI, MTA-STS and TLS-RPT all say so)."""
    if not tags or tags[0].name != "v" or tags[0].value != version:
        first = str(tags[0]) if tags else "nothing"
        raise RecordSyntaxError(
            f"the record must start with v={version} (found {first}); receivers ignore it "
            "otherwise",
            code,
        )


def uri_list(value: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in value.split(",") if u.strip())
