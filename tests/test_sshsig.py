"""OpenSSH ed25519 keys sign approvals and requests through the real `ssh-keygen -Y sign`.

The roster lists the key as an `ssh-ed25519 AAAA...` line; the signature is an armored sshsig in
the `dmarcops` namespace, verified offline against the roster's keys only.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from portfolio import copy_example
from signing import reseal

from pipeline.cli import main
from pipeline.gate import sshsig
from pipeline.gate.approvals import SignedApprovalFiles, verify
from pipeline.gate.identity import verify_signature
from pipeline.gate.roster import load_roster

REQUEST = "CR-0002-fabrikam-labs"  # medium, written by jchen: needs a peer's approval


def ssh_key(folder: Path, name: str) -> tuple[Path, str]:
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    line = " ".join(path.with_name(name + ".pub").read_text().split()[:2])
    return path, line


def run(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--repo", str(repo), *args])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


def give_sokafor(repo: Path, line: str) -> None:
    roster = repo / "policy" / "roster.yaml"
    text = roster.read_text()
    old = re.search(r"(?m)^    public_key: cXuE9q\S+$", text)
    assert old is not None
    raw = old.group(0).split(": ", 1)[1]
    roster.write_text(text.replace(old.group(0), f'    public_keys: [{raw}, "{line}"]'))
    reseal(repo)  # the key counts once a lead has sealed the roster change


def plan(repo: Path) -> Path:
    out = repo / "plan.json"
    planned = run(repo, "plan", "--at", "2026-12-01T08:30", "--out", str(out))
    assert planned.exit_code in (0, 2), planned.output  # 2: other requests not yet approved
    return out


def test_an_ssh_key_on_the_roster_approves_through_ssh_keygen(repo: Path, tmp_path: Path) -> None:
    key, line = ssh_key(tmp_path, "sokafor_ed25519")
    give_sokafor(repo, line)
    plan_file = plan(repo)
    before = run(repo, "requests", "check", "--plan", str(plan_file))
    assert f"{REQUEST} (" in before.stdout and "missing: peer review" in before.stdout

    approved = run(
        repo, "approve", "--plan", str(plan_file), "--request", REQUEST, "--key", str(key),
        "--at", "2026-12-01T08:40",
    )  # fmt: skip
    assert approved.exit_code == 0, approved.output
    assert "by sokafor" in approved.stdout

    plan_hash = json.loads(plan_file.read_text())["plan_hash"]
    (stored,) = SignedApprovalFiles(repo).approvals_for(plan_hash, REQUEST)
    assert stored.signature.startswith(sshsig.BEGIN)
    roster = load_roster(repo)
    assert verify(stored, roster)
    after = run(repo, "requests", "check", "--plan", str(plan_file))
    assert "present: peer review: sokafor" in after.stdout


def test_the_public_half_alone_signs_through_the_agent_path(repo: Path, tmp_path: Path) -> None:
    # With only KEY.pub, ssh-keygen looks the private key up beside it or in the agent; dmarcops
    # itself never reads the private key.
    key, line = ssh_key(tmp_path, "sokafor_ed25519")
    give_sokafor(repo, line)
    roster = load_roster(repo)
    from pipeline.gate.identity import load_signer

    signer = load_signer(key.with_name(key.name + ".pub"), roster, claimed="sokafor")
    assert signer.analyst == "sokafor" and signer.key is None
    signature = signer.sign(b"payload")
    assert verify_signature(roster, "sokafor", b"payload", signature)
    assert not verify_signature(roster, "sokafor", b"payload!", signature)
    assert not verify_signature(roster, "jchen", b"payload", signature)


def test_signatures_from_another_namespace_or_key_do_not_count(repo: Path, tmp_path: Path) -> None:
    key, line = ssh_key(tmp_path, "sokafor_ed25519")
    stranger, _ = ssh_key(tmp_path, "stranger_ed25519")
    give_sokafor(repo, line)
    roster = load_roster(repo)
    message = tmp_path / "payload"
    message.write_bytes(b"approve plan X")

    def ssh_sign(path: Path, namespace: str) -> str:
        subprocess.run(
            ["ssh-keygen", "-Y", "sign", "-n", namespace, "-f", str(path), str(message)],
            check=True,
            capture_output=True,
        )
        signature = message.with_name("payload.sig")
        text = signature.read_text()
        signature.unlink()
        return text

    good = ssh_sign(key, "dmarcops")
    assert verify_signature(roster, "sokafor", b"approve plan X", good)
    # A git commit signature by the same key is not an approval.
    assert not verify_signature(roster, "sokafor", b"approve plan X", ssh_sign(key, "git"))
    # A self-consistent signature by a key the roster does not hold.
    assert not verify_signature(
        roster, "sokafor", b"approve plan X", ssh_sign(stranger, "dmarcops")
    )
    # Truncated or mangled armour is no signature, never an exception.
    assert not verify_signature(roster, "sokafor", b"approve plan X", good[:80] + sshsig.END)
    assert not verify_signature(roster, "sokafor", b"approve plan X", good.replace("A", "B", 3))


def test_ssh_keygen_verifies_what_we_verify(repo: Path, tmp_path: Path) -> None:
    """Cross-check with OpenSSH's own verifier: our reading of PROTOCOL.sshsig matches it."""
    key, line = ssh_key(tmp_path, "sokafor_ed25519")
    signature = sshsig.sign_with_ssh_keygen(key, b"payload")
    allowed = tmp_path / "allowed"
    allowed.write_text(f"sokafor {line}\n")
    sig_file = tmp_path / "sig"
    sig_file.write_text(signature + "\n")
    checked = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "sokafor", "-n", "dmarcops",
         "-s", str(sig_file)],
        input=b"payload",
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    give_sokafor(repo, line)
    assert verify_signature(load_roster(repo), "sokafor", b"payload", signature)
