"""Malformed corpora shared by the CLI tests of every command that reads a jsonl corpus.

Each case: (file bytes, what the one error line must say right after the file name).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pythia_suite.cli import main

BAD_CORPORA = {
    "malformed": (b'{"text": "ok", "meta": {}}\n{"text": "broken"\n', ":2: malformed JSON"),
    "malformed_value": (b'{"text": "ok"}\n{"text": \n', ":2: malformed JSON"),
    "missing_text": (b'{"text": "ok"}\n{"meta": {"id": 1}}\n', ":2: missing field 'text'"),
    "missing_text_first": (b'{"meta": {"pile_set_name": "x"}}\n', ":1: missing field 'text'"),
    "bad_utf8": (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', ":2: invalid UTF-8"),
    "bad_utf8_first": (b'{"text": "\xff\xfe"}\n', ":1: invalid UTF-8"),
    "empty_lines": (b"\n\n", ": empty corpus"),
    "empty_file": (b"", ": empty corpus"),
}


def assert_rejected(
    case: str, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Write case to tmp_path/in.jsonl, run `pythia-suite ARGV` (where "IN" stands for that
    file): exit 2, one error line naming file and line, nothing else left in tmp_path."""
    data, message = BAD_CORPORA[case]
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    assert main([str(src) if a == "IN" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pythia-suite: error: {src}{message}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
