"""An octoDNS Manager config for the portfolio, so octoDNS's own tools read the same zone files.

`octodns-validate --config-file` on it checks every zone file the way octoDNS does; `octodns-sync`
on it is the plain dry run the benchmark compares against. Secrets stay `env/NAME` references.
"""

from __future__ import annotations

from typing import Any

from pipeline.load.portfolio import DMARCOPS_KEYS, Portfolio
from pipeline.load.zones import DEFAULT_TTL, ESCAPED_SEMICOLONS


def octodns_config(portfolio: Portfolio) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    zones: dict[str, Any] = {}
    for client_id in sorted({z.client for z in portfolio.zone_files}):
        providers[f"zones-{client_id}"] = {
            "class": "octodns.provider.yaml.YamlProvider",
            "directory": str(portfolio.root / "zones" / client_id),
            "default_ttl": DEFAULT_TTL,
            "enforce_order": True,
            "escaped_semicolons": ESCAPED_SEMICOLONS,
            "supports_root_ns": False,
        }
    used = {portfolio.clients[z.client].provider for z in portfolio.zone_files}
    for name, config in portfolio.providers.items():
        if name not in used:
            continue  # octoDNS resolves every provider's secrets up front
        # dmarcops's own keys (mta_sts_policies) are not octoDNS provider arguments.
        options = {
            k: v for k, v in config.options.items() if k == "class" or k not in DMARCOPS_KEYS
        }
        directory = options.get("directory")
        if isinstance(directory, str) and not directory.startswith("/"):
            options["directory"] = str(portfolio.root / directory)
        providers[name] = options
    for zone_file in portfolio.zone_files:
        client = portfolio.clients[zone_file.client]
        zones[f"{zone_file.domain}."] = {
            "sources": [f"zones-{zone_file.client}"],
            "targets": [client.provider],
        }
    return {"providers": providers, "zones": zones}
