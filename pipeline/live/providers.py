"""octoDNS providers built from policy/providers.yaml: the only way live DNS is read or written.

We build providers ourselves instead of through octoDNS's Manager: the Manager aborts the whole sync on
one zone's exception, and we plan (and later apply) zone by zone (octodns-notes.md).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from pipeline.errors import EnvironmentProblem, InputError
from pipeline.load.portfolio import ProviderConfig

ENV_PREFIX = "env/"
# Keys of ours in a provider entry, taken out before the options reach the octoDNS class.
MTA_STS_POLICIES = "mta_sts_policies"
DMARCOPS_KEYS = frozenset({"class", MTA_STS_POLICIES})
DEFAULT_POLICY_URL = "https://mta-sts.{domain}/.well-known/mta-sts.txt"  # RFC 8461 3.3


def _secret(config: ProviderConfig, key: str, value: str) -> Any:
    # Same syntax as octoDNS's EnvironSecrets: env/NAME or env/NAME/default.
    name, _, default = value[len(ENV_PREFIX) :].partition("/")
    found = os.environ.get(name)
    if found is None:
        if not default:
            raise EnvironmentProblem(
                f"provider {config.name!r} needs {key} from the environment variable {name}, "
                "which is not set",
                file=config.file,
                line=config.line,
                hint=f"export {name}=... (secrets never go into the repository).",
            )
        found = default
    return int(found) if found.isdigit() else found


def provider_options(config: ProviderConfig, root: Path) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in config.options.items():
        if key in DMARCOPS_KEYS:
            continue
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            value = _secret(config, key, value)
        if key == "directory" and isinstance(value, str) and not Path(value).is_absolute():
            value = str(root / value)
        options[key] = value
    return options


def provider_class(config: ProviderConfig) -> type[Any]:
    module_name, _, class_name = str(config.options["class"]).rpartition(".")
    try:
        module = importlib.import_module(module_name)
        cls: type[Any] = getattr(module, class_name)
    except (ImportError, AttributeError):
        raise InputError(
            f"provider {config.name!r}: cannot import {config.options['class']}",
            file=config.file,
            line=config.line,
            hint="Install the octoDNS provider package, or fix the class path.",
        ) from None
    return cls


def build_provider(config: ProviderConfig, root: Path, instance: str = "") -> Any:
    """A fresh provider instance (one per zone, so threads never share provider caches)."""
    cls = provider_class(config)
    options = provider_options(config, root)
    try:
        return cls(f"{config.name}{instance}", **options)
    except TypeError as exc:
        raise InputError(
            f"provider {config.name!r} rejects its options: {exc}",
            file=config.file,
            line=config.line,
            hint="Check the keys against the octoDNS provider's documentation.",
        ) from None
