"""Which octoDNS provider classes a providers file may name.

A provider's `class:` is a Python import path that dmarcops imports and calls with the entry's
options. Unchecked, a pull request could name any importable callable (`class:
subprocess.getoutput` runs the provider's name as a shell command in CI, where the DNS
credentials are). So only the classes below are ever imported; anything else is refused before
the import, with the file and line.

The list is a constant in code, on purpose: policy/settings.yaml is a repository file the same
pull request could edit, so letting it extend the list would let the attacker extend it. Adding a
provider is a code change (reviewed like one): add its class here and to docs/input-safety.md.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError

ALLOWED_PROVIDER_CLASSES: frozenset[str] = frozenset(
    {
        # The embedded sandbox (and any directory of octoDNS YAML zone files).
        "octodns.provider.yaml.YamlProvider",
        # BIND 9 and other RFC 2136 primaries (octodns-bind): what the MSP runs; the DNS tests.
        "octodns_bind.Rfc2136Provider",
        # Hosted DNS of clients (octodns-route53, octodns-powerdns).
        "octodns_route53.Route53Provider",
        "octodns_powerdns.PowerDnsProvider",
    }
)


def provider_class_problem(
    name: str, class_path: object, file: Path, line: int | None
) -> InputError | None:
    """An InputError when `class_path` is not an allowed provider class; None when it is."""
    if isinstance(class_path, str) and class_path in ALLOWED_PROVIDER_CLASSES:
        return None
    return InputError(
        f"provider {name!r}: class {class_path!r} is not an octoDNS provider dmarcops supports; "
        "it was not imported",
        file=file,
        line=line,
        hint=f"Use one of: {', '.join(sorted(ALLOWED_PROVIDER_CLASSES))} "
        "(docs/input-safety.md, 'Provider classes').",
    )


# Options that hold credentials. Written literally they would sit in the repository (and in every
# clone and CI log of it): only `env/NAME` is accepted. Route 53 needs none of them: boto3's
# standard chain (AWS_* variables, a profile, a role, OIDC in Actions) is the intended way.
SECRET_OPTIONS: frozenset[str] = frozenset(
    {"key_secret", "api_key", "access_key_id", "secret_access_key", "session_token"}
)


def provider_secret_problem(
    name: str, key: str, value: object, file: Path, line: int | None
) -> InputError | None:
    """An InputError when a credential option is written in the file instead of env/NAME."""
    if key not in SECRET_OPTIONS or (isinstance(value, str) and value.startswith("env/")):
        return None
    return InputError(
        f"provider {name!r}: {key} is written in the file; credentials never go into the "
        "repository",
        file=file,
        line=line,
        hint=f"Write {key}: env/NAME and export NAME (for Route 53, leave the key out: boto3's "
        "standard credential chain is used).",
    )
