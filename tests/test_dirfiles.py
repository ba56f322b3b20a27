"""pipeline.load.dirfiles: many files of one directory read with read_bytes's answers, and its
refusals, at a lower cost per file (audit verify reads two files per record)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.load import dirfiles
from pipeline.load.dirfiles import ABSENT, DirectoryFiles
from pipeline.load.files import DEFAULT_LIMITS, read_bytes


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "policy").mkdir()
    (tmp_path / "changes" / "records").mkdir(parents=True)
    return tmp_path


def message_of(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except InputError as exc:
        return str(exc)
    raise AssertionError("not refused")


def hostile(records: Path, outside: Path) -> dict[str, Path]:
    """One of each thing read_bytes refuses, in the records directory."""
    secret = outside / "secret"
    secret.write_text("not for the repository")
    made = {
        "link": records / "link.json",
        "dangling": records / "dangling.json",
        "fifo": records / "fifo.json",
        "huge": records / "huge.json",
        "directory": records / "dir.json",
    }
    made["link"].symlink_to(secret)
    made["dangling"].symlink_to(outside / "nothing")
    os.mkfifo(made["fifo"])
    made["huge"].write_bytes(b"x" * (DEFAULT_LIMITS.max_file_bytes + 1))
    made["directory"].mkdir()
    return made


def test_a_regular_file_is_read_without_read_bytes(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = repo / "changes" / "records"
    (records / "2026-0001.json").write_bytes(b'{"id": "2026-0001"}\n')

    def refused(*_: object, **__: object) -> bytes:
        raise AssertionError("the common case must not go through read_bytes")

    monkeypatch.setattr(dirfiles, "read_bytes", refused)
    with DirectoryFiles(records, repo) as directory:
        assert directory.read("2026-0001.json") == b'{"id": "2026-0001"}\n'
        assert directory.text_if_present("2026-0001.json") == '{"id": "2026-0001"}\n'
        assert directory.text_if_present("2026-0002.json") is ABSENT


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 65537, DEFAULT_LIMITS.max_file_bytes])
def test_every_size_up_to_the_limit_is_read_whole(repo: Path, size: int) -> None:
    """One read of the file's size is the whole file, at the edges of pages and of the limit."""
    records = repo / "changes" / "records"
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    (records / "r.json").write_bytes(body)
    with DirectoryFiles(records, repo) as directory:
        assert directory.read("r.json") == body


def test_every_refusal_is_read_bytes_own(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    records = repo / "changes" / "records"
    outside = tmp_path_factory.mktemp("outside")
    made = hostile(records, outside)
    with DirectoryFiles(records, repo) as directory:
        for kind, path in made.items():
            expected = message_of(lambda p=path: read_bytes(p, root=repo))
            assert message_of(lambda p=path: directory.read(p.name)) == expected, kind
            # Refused is not absent: audit verify reports an unreadable rendering.
            assert directory.text_if_present(path.name) is None, kind
        assert message_of(lambda: directory.read("missing.json")) == message_of(
            lambda: read_bytes(records / "missing.json", root=repo)
        )
        # A dangling link is something at the name (a present but refused input).
        assert directory.text_if_present("dangling.json") is None
        assert directory.text_if_present("missing.json") is ABSENT


def test_a_records_directory_linked_outside_is_refused_file_by_file(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "2026-0001.json").write_text("{}")
    records = repo / "changes" / "records"
    records.rmdir()
    records.symlink_to(elsewhere)
    with DirectoryFiles(records, repo) as directory:
        refused = message_of(lambda: directory.read("2026-0001.json"))
    assert "resolves outside the repository" in refused
    assert refused == message_of(lambda: read_bytes(records / "2026-0001.json", root=repo))
