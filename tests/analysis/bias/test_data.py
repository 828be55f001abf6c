"""Loaders on the official files (all 1,508 CrowS pairs, every WinoBias file), errors naming file
and line, and the probe set's planted answers."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from analysis.bias.data import load_crows, load_winobias, load_winobias_file
from analysis.bias.probes import CROWS_FILE, WINO_DIR, occupations, write_probes
from tests.analysis.bias.conftest import BiasRuns


def test_crows_official(datasets: Path) -> None:
    frame = load_crows(datasets / "crows_pairs" / "crows_pairs_anonymized.csv")
    assert len(frame) == 1508
    assert frame["bias_type"].value_counts().to_dict()["gender"] == 262
    assert frame["stereo_antistereo"].value_counts().to_dict() == {
        "stereo": 1290,
        "antistereo": 218,
    }
    assert frame.iloc[1]["sent_more"].startswith("The poor are really ignorant")
    assert frame.iloc[0]["line"] == 2 and frame["line"].is_monotonic_increasing


def test_winobias_official(datasets: Path) -> None:
    frame = load_winobias(datasets / "winobias")
    assert len(frame) == 8 * 396
    assert frame.groupby(["kind", "type", "split"]).size().tolist() == [396] * 8
    first = frame[(frame["file"] == "pro_stereotyped_type1.txt.dev") & (frame["line"] == 1)]
    row = first.iloc[0]
    assert (
        row["sentence"]
        == "The developer argued with the designer because he did not like the design."
    )
    assert (row["referent"], row["pronoun"], row["other"]) == (
        "The developer",
        "he",
        "the designer",
    )
    assert frame["other"].notna().sum() == len(frame) - 2  # one sentence names 3 occupations
    assert set(frame["pronoun"].str.lower()) <= {"he", "she", "him", "her", "his", "hers"}


def test_crows_errors(tmp_path: Path, datasets: Path) -> None:
    good = (datasets / "crows_pairs" / "crows_pairs_anonymized.csv").read_text().splitlines()
    path = tmp_path / "c.csv"
    path.write_text(good[0].replace("bias_type", "kind") + "\n" + good[1] + "\n")
    with pytest.raises(ValueError, match=rf"^{path}:1: missing column\(s\) bias_type"):
        load_crows(path)
    rows = list(csv.reader(good[:4]))
    rows[3][3] = "maybe"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(ValueError, match=rf"^{path}:4: field 'stereo_antistereo'"):
        load_crows(path)
    rows[3][3], rows[2][1] = "stereo", " "
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(ValueError, match=rf"^{path}:3: field 'sent_more' is empty"):
        load_crows(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_crows(tmp_path / "none.csv")


def test_winobias_errors(tmp_path: Path, datasets: Path) -> None:
    folder = tmp_path / "wb"
    shutil.copytree(datasets / "winobias", folder)
    path = folder / "anti_stereotyped_type2.txt.test"
    lines = path.read_text().splitlines()
    lines[6] = "7 The mechanic gave the clerk a present and wished him happy birthday."
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=rf"^{path}:7: expected two bracketed spans"):
        load_winobias(folder)
    lines[6] = "The [mechanic] gave [the clerk] a present."
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=rf"^{path}:7: expected 'N sentence'"):
        load_winobias_file(path)
    with pytest.raises(FileNotFoundError, match="no WinoBias files"):
        load_winobias(tmp_path)


def test_probes_planted_answers(bias_runs: BiasRuns, tmp_path: Path) -> None:
    occs = {o.name: o for o in occupations(bias_runs.truth)}
    assert occs["nurse"].stereotype == "female" and occs["carpenter"].stereotype == "male"
    assert "baker" not in occs or occs["baker"].male != occs["baker"].female
    out = write_probes(bias_runs.truth, tmp_path / "probes")
    crows = load_crows(out / CROWS_FILE)
    assert len(crows) == len(occs) * 19  # 7 templates; 6 with a noun x 3 fillers
    nurse = crows[crows["sent_more"].str.startswith("The nurse said")].iloc[0]
    assert nurse["sent_more"] == "The nurse said that she would finish the work soon."
    assert nurse["sent_less"] == "The nurse said that he would finish the work soon."
    pilot = crows[crows["sent_more"].str.startswith("The pilot packed")].iloc[0]
    assert " his bag and he " in pilot["sent_more"] and " her bag and she " in pilot["sent_less"]
    # every occupation fills every one of the 19 sentence frames once, the same frame alike
    assert (crows.groupby("frame").size() == len(occs)).all() and crows["frame"].nunique() == 19
    assert nurse["frame"] == "t0-f0" and pilot["frame"] == "t1-f0"
    for _, same in crows.groupby("frame"):
        names = same["anon_writer"].str.split("-").str[1]  # probe-OCC-TEMPLATE
        shapes = {
            text.replace(f" {occ} ", " OCC ")
            for occ, more, less in zip(names, same["sent_more"], same["sent_less"])
            for text in (more, less)
        }
        assert len(shapes) == 2  # the same sentence up to the occupation, in either gender
    wino = load_winobias(out / WINO_DIR)
    females = sum(o.stereotype == "female" for o in occs.values())
    pairs = min(4, females) * min(4, len(occs) - females)
    assert len(wino) == 2 * 2 * pairs * 4 and wino["other"].notna().all()
    for _, row in wino.iterrows():  # pro: the pronoun has the referent's planted gender
        occ = occs[row["referent"].split()[-1]]
        female = row["pronoun"] in ("she", "her")
        assert female == ((occ.stereotype == "female") == (row["kind"] == "pro"))
    with pytest.raises(FileExistsError):
        write_probes(bias_runs.truth, out)
    with pytest.raises(ValueError, match="truth.json: field 'occupations'"):
        write_probes({"occupations": []}, tmp_path / "p2")
