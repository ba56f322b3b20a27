"""Reading the live MTA-STS policy where it is served (the desired one: pipeline.load.mta_sts).

dmarcops does not host policy files (out of scope) but validates them (M2) and diffs them, so
a mode change or an MX change is classified, and a policy changed without a new `_mta-sts` id (M3) is
caught. The live policy is read from `mta_sts_policies` in the client's provider entry: a URL
template (default https://mta-sts.{domain}/.well-known/mta-sts.txt) or a path relative to the
repository (the sandbox keeps its "served" policies in sandbox/live/).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.load.files import exists, read_text
from pipeline.load.mta_sts import MAX_POLICY_BYTES
from pipeline.load.portfolio import DEFAULT_POLICY_URL, MTA_STS_POLICIES, ProviderConfig


@dataclass(frozen=True)
class LivePolicy:
    text: str | None  # None: no policy is published
    source: str
    error: str = ""  # set when the policy could not be read: its state is unknown


def live_policy(
    provider: ProviderConfig, root: Path, domain: str, timeout: float = 5.0
) -> LivePolicy:
    template = str(provider.options.get(MTA_STS_POLICIES, DEFAULT_POLICY_URL))
    # Only {domain} is substituted: str.format would also evaluate `{domain.__class__}` or fail
    # on `{0}` in a template from the repository.
    where = template.replace("{domain}", domain)
    if not where.startswith(("https://", "http://")):
        path = root / where
        if not exists(path):
            return LivePolicy(None, str(path))
        # A repository file (the sandbox's "served" policy): inside the repository only, so
        # `../../etc/passwd` or an absolute path is refused; a refusal is an InputError (exit 1).
        return LivePolicy(read_text(path, root=root, limit=MAX_POLICY_BYTES), str(path))
    # Imported here: only a policy served over HTTPS needs it (the sandbox's is a file).
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(where, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return LivePolicy(response.read(MAX_POLICY_BYTES).decode("utf-8", "replace"), where)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return LivePolicy(None, where)
        return LivePolicy(None, where, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return LivePolicy(None, where, str(getattr(exc, "reason", exc)))
