"""octoDNS providers built from policy/providers.yaml: the only way live DNS is read or written.

We build providers ourselves instead of through octoDNS's Manager: the Manager aborts the whole sync on
one zone's exception, and we plan (and later apply) zone by zone (an octoDNS behaviour; docs/providers.md).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from pipeline.clock import SANDBOX_CLASSES
from pipeline.errors import EnvironmentProblem, InputError
from pipeline.load.files import exists
from pipeline.load.portfolio import DMARCOPS_KEYS, DNS_SERVER, ProviderConfig
from pipeline.load.provider_classes import provider_class_problem
from pipeline.load.yamlfile import load_yaml

ENV_PREFIX = "env/"
BIND = "octodns_bind.Rfc2136Provider"
ROUTE53 = "octodns_route53.Route53Provider"
POWERDNS = "octodns_powerdns.PowerDnsProvider"
# botocore's retries (with exponential backoff) cover Route 53's Throttling and
# PriorRequestNotComplete; a throttled request was not applied, so retrying it is safe.
# octodns-route53's client_max_attempts is botocore's legacy `max_attempts`, which counts retries:
# five retries after the first request wait at most 31 s in all (a random base under 1 s,
# doubled each time).
ROUTE53_ATTEMPTS = 5


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
    if config.options.get("class") == ROUTE53:
        options.setdefault("client_max_attempts", ROUTE53_ATTEMPTS)
    return options


def dns_server_of(config: ProviderConfig) -> tuple[str, int] | None:
    """The `dns_server: host:port` of an entry (env/NAME allowed), for verification by DNS."""
    value = config.options.get(DNS_SERVER)
    if value is None:
        return None
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        value = str(_secret(config, DNS_SERVER, value))
    host, _, port = str(value).rpartition(":")
    if not host or not port.isdigit():
        raise InputError(
            f"provider {config.name!r}: dns_server {value!r} is not host:port",
            file=config.file,
            line=config.line,
            hint="Write the authoritative server's address, e.g. dns_server: 192.0.2.53:53.",
        )
    return host.strip("[]"), int(port)


def provider_class(config: ProviderConfig) -> type[Any]:
    # Checked again here, before the import, whatever path built the config: importing a module
    # runs its code, and calling an arbitrary callable runs anything (provider_classes.py).
    problem = provider_class_problem(
        config.name, config.options.get("class"), config.file, config.line
    )
    if problem is not None:
        raise problem
    if config.options["class"] == BIND:
        # The same provider with a faster reader of live zones (pipeline/live/axfr.py).
        from pipeline.live.axfr import Rfc2136Provider

        return Rfc2136Provider
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
        target = cls(f"{config.name}{instance}", **options)
    except TypeError as exc:
        raise InputError(
            f"provider {config.name!r} rejects its options: {exc}",
            file=config.file,
            line=config.line,
            hint="Check the keys against the octoDNS provider's documentation.",
        ) from None
    # Verification reads it from the target (pipeline.apply.verify.authoritative_server).
    target.dmarcops_dns_server = dns_server_of(config)
    target.dmarcops_provider = config
    return target


def check_local_zone(config: ProviderConfig, root: Path, domain: str) -> None:
    """The embedded sandbox's "live" zone file is a repository file like any other, but octoDNS's
    YamlProvider would open it itself (following links, waiting on a FIFO, expanding aliases).
    Read it through pipeline.load.yamlfile first, so a hostile one is refused by name."""
    if str(config.options.get("class", "")) not in SANDBOX_CLASSES:
        return
    directory = config.options.get("directory")
    if not isinstance(directory, str):
        return
    path = (root / directory if not Path(directory).is_absolute() else Path(directory)) / (
        f"{domain}.yaml"
    )
    if exists(path):
        load_yaml(path, root=root)
