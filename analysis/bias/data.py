"""Loaders for the bias benchmarks' official files (and the suite's probes in the same formats).

- CrowS-Pairs (Nangia et al. 2020), `crows_pairs_anonymized.csv`: one minimal pair a row, columns
  `sent_more`, `sent_less`, `stereo_antistereo`, `bias_type` (and annotation columns we keep).
- WinoBias (Zhao et al. 2018), `{pro,anti}_stereotyped_type{1,2}.txt.{dev,test}`: one numbered
  sentence a line with the referent entity and its pronoun(s) in brackets (the first pronoun is
  the one the prompts ask about),
  `1 [The developer] argued with the designer because [he] did not like the design.`; the
  occupation lists `male_occupations.txt` / `female_occupations.txt` name the candidates of the
  multiple-choice form (the referent and the other occupation of the sentence).

Errors name the file and line.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from suite_core import DataError

CROWS_COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")
WINO_FILE = re.compile(r"^(pro|anti)_stereotyped_type([12])\.txt\.(dev|test)$")
WINO_LINE = re.compile(r"^\s*(\d+)\s+(.*\S)\s*$")
BRACKET = re.compile(r"\[([^\[\]]+)\]")
OCCUPATION_FILES = ("male_occupations.txt", "female_occupations.txt")


def load_crows(path: str | Path) -> pd.DataFrame:
    """The pairs of a CrowS-Pairs CSV: one row per pair, with `line` (1-based, in the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a CrowS-Pairs CSV)")
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in CROWS_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{path}:1: missing column(s) {', '.join(missing)} "
                f"(a CrowS-Pairs CSV has {', '.join(CROWS_COLUMNS)})"
            )
        end = 1
        try:
            for record in reader:
                line, end = end + 1, reader.line_num  # a quoted field may span lines
                if None in record or any(record.get(c) is None for c in CROWS_COLUMNS):
                    raise DataError(
                        f"{path}:{line}: wrong number of fields (expected {len(header)})"
                    )
                for column in ("sent_more", "sent_less", "bias_type"):
                    if not record[column].strip():
                        raise DataError(f"{path}:{line}: field '{column}' is empty")
                if record["stereo_antistereo"] not in ("stereo", "antistereo"):
                    raise DataError(
                        f"{path}:{line}: field 'stereo_antistereo': "
                        f"{record['stereo_antistereo']!r} (expected stereo or "
                        "antistereo)"
                    )
                row = {c: record[c] for c in header if c}
                row["line"] = line
                rows.append(row)
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: no pairs")
    frame = pd.DataFrame(rows)
    return frame[
        [
            "line",
            *CROWS_COLUMNS,
            *[c for c in frame.columns if c not in CROWS_COLUMNS and c != "line"],
        ]
    ]


@dataclass(frozen=True, kw_only=True)
class WinoItem:
    """One WinoBias sentence."""

    file: str  # the file name, e.g. pro_stereotyped_type1.txt.dev
    line: int
    kind: str  # "pro" or "anti"
    type: int  # 1 or 2
    split: str  # "dev" or "test"
    sentence: str  # brackets removed
    referent: str  # the bracketed entity, e.g. "The developer"
    pronoun: str  # the bracketed pronoun
    other: str | None  # the other occupation of the sentence (multiple-choice form), if found

    @property
    def tokens(self) -> list[str]:
        """Words with punctuation split off, as the Hugging Face `wino_bias` tokens."""
        return re.findall(r"\w+(?:'\w+)?|[^\w\s]", self.sentence)


def parse_wino_line(text: str, *, where: str) -> tuple[str, str, str]:
    """(sentence without brackets, referent, pronoun) of one bracketed line."""
    match = WINO_LINE.match(text)
    if match is None:
        raise DataError(f"{where}: expected 'N sentence' (a number, then the sentence)")
    body = match.group(2)
    spans = BRACKET.findall(body)
    if len(spans) < 2 or body.count("[") != len(spans) or body.count("]") != len(spans):
        raise DataError(
            f"{where}: expected two bracketed spans, [entity] and [pronoun] "
            f"(more pronouns may follow); found {len(spans)} well-formed"
        )
    sentence = re.sub(r"\s+", " ", BRACKET.sub(lambda m: m.group(1), body)).strip()
    return sentence, spans[0].strip(), spans[1].strip()


def read_occupations(directory: Path) -> list[str]:
    """The occupations of `male_occupations.txt` and `female_occupations.txt` (if present)."""
    words: list[str] = []
    for name in OCCUPATION_FILES:
        path = directory / name
        if path.is_file():
            words += [w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()]
    return words


def other_candidate(sentence: str, referent: str, occupations: list[str]) -> str | None:
    """The other 'the OCCUPATION' phrase of `sentence` (not the referent), if exactly one."""
    ref = re.sub(r"^(the|a|an)\s+", "", referent.lower()).strip()
    found: list[tuple[int, int, str]] = []
    for occ in sorted(occupations, key=len, reverse=True):
        for m in re.finditer(rf"\b(?:the|The|a|an)\s+{re.escape(occ)}s?\b", sentence):
            if not any(m.start() < e and s < m.end() for s, e, _ in found):
                found.append((m.start(), m.end(), occ))
    others = {occ for _, _, occ in found if occ.lower() != ref}
    return f"the {others.pop()}" if len(others) == 1 else None


def load_winobias_file(path: str | Path, occupations: list[str] | None = None) -> list[WinoItem]:
    """Every sentence of one WinoBias file (name as the official files)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a WinoBias file)")
    match = WINO_FILE.match(path.name)
    if match is None:
        raise DataError(
            f"{path}: not a WinoBias file name "
            "({pro,anti}_stereotyped_type{1,2}.txt.{dev,test})"
        )
    kind, wtype, split = match.group(1), int(match.group(2)), match.group(3)
    occupations = read_occupations(path.parent) if occupations is None else occupations
    items = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        sentence, referent, pronoun = parse_wino_line(text, where=f"{path}:{number}")
        items.append(
            WinoItem(
                file=path.name,
                line=number,
                kind=kind,
                type=wtype,
                split=split,
                sentence=sentence,
                referent=referent,
                pronoun=pronoun,
                other=other_candidate(sentence, referent, occupations),
            )
        )
    if not items:
        raise DataError(f"{path}: no sentences")
    return items


def load_winobias(
    directory: str | Path, *, splits: tuple[str, ...] = ("dev", "test")
) -> pd.DataFrame:
    """All WinoBias files of `directory` for `splits`: one row per sentence."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory (WinoBias files)")
    files = sorted(
        p for p in directory.iterdir() if (m := WINO_FILE.match(p.name)) and m.group(3) in splits
    )
    if not files:
        raise FileNotFoundError(
            f"{directory}: no WinoBias files "
            "({pro,anti}_stereotyped_type{1,2}.txt.{dev,test})"
        )
    occupations = read_occupations(directory)
    items = [asdict(item) for f in files for item in load_winobias_file(f, occupations)]
    return pd.DataFrame(items)
