"""The suite config: presets, YAML merged over them, one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pythia_suite.suite.config import SuiteConfig, dump_config, load_config
from pythia_suite.suite.presets import PRESETS
from tests.pythia_suite.suite.conftest import run_cli, write_yaml


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_validate_and_round_trip(preset: str, tmp_path: Path) -> None:
    config = load_config(None, preset=preset)
    assert isinstance(config, SuiteConfig) and config.name == preset
    assert config.train.threads is None  # unset: `run_suite` pins it on the first run
    saved = write_yaml(tmp_path / "suite.yaml", dump_config(config))
    assert load_config(saved, preset="tiny") == config  # the saved config is complete


def test_yaml_is_merged_over_the_preset(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "s.yaml",
        "name: mine\ndata:\n  steps: 40\ntrain:\n  models: [pythia-nano, pythia-micro]\n",
    )
    config = load_config(path, preset="tiny")
    tiny = load_config(None, preset="tiny")
    assert config.name == "mine" and config.data.steps == 40
    assert config.data.batch_size == tiny.data.batch_size  # the rest of the section kept
    assert config.train.models == ("pythia-nano", "pythia-micro")
    assert config.data.num_samples == 40 * tiny.data.batch_size + tiny.data.held_out_rows
    assert load_config(path, preset="tiny", name="other").name == "other"


BAD = [
    ("train:\n  modells: [pythia-nano]\n", "s.yaml:2: field 'train.modells': unknown key"),
    ("data:\n  steps: many\n", "s.yaml:2: field 'data.steps': must be an integer, got 'many'"),
    ("data:\n  steps: 0\n", "s.yaml:2: field 'data.steps': must be >= 1, got 0"),
    ("data:\n  held_out_rows: -1\n", "field 'data.held_out_rows': must be >= 0, got -1"),
    ("\n\ntrain:\n  models: [pythia-huge]\n", "s.yaml:4: field 'train.models': unknown model"),
    ("train:\n  models: pythia-nano\n", "field 'train.models': must be a non-empty list"),
    ("train:\n  variants: [standard, dirty]\n", "field 'train.variants': unknown variant 'dirty'"),
    ("train:\n  precision: fp8\n", "field 'train.precision': unknown 'fp8'"),
    ("train:\n  checkpoints: every-so-often\n", "field 'train.checkpoints':"),
    ("dedup:\n  threshold: 1.5\n", "field 'dedup.threshold': must be in (0, 1], got 1.5"),
    ("corpus:\n  path: c.jsonl\n", "field 'corpus': give exactly one of 'synth'"),
    ("corpus:\n  synth: huge\n", "field 'corpus.synth': unknown preset 'huge'"),
    ("branch:\n  enabled: yes please\n", "field 'branch.enabled': must be true or false"),
    ("branch:\n  step: 99\n", "field 'branch.step': must be in [0, 24), got 99"),
    ("branch:\n  model: pythia-mini\n", "field 'branch.model': 'pythia-mini' is not one of"),
    ("studies:\n  astrology: {}\n", "s.yaml:2: field 'studies.astrology': unknown study"),
    ("studies:\n  bias: 3\n", "field 'studies.bias': must be a mapping of options"),
    ("name: ../escape\n", "s.yaml:1: field 'name': must be a plain directory name"),
    ("nmae: x\n", "s.yaml:1: field 'nmae': unknown key (known: name, corpus,"),
    ("data: 3\n", "s.yaml:1: field 'data': must be a mapping, got 3"),
    ("- a\n- b\n", "s.yaml: the suite config must be a mapping of sections"),
    ("data: {steps: [1\n", "s.yaml:2: malformed YAML"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_config_is_one_error_naming_the_field(text: str, message: str, tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "s.yaml", text)
    with pytest.raises(ValueError) as info:
        load_config(path, preset="tiny")
    assert str(info.value).startswith(str(tmp_path / "s.yaml")), str(info.value)
    assert message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "s.yaml", "train:\n  models: [pythia-nano]\n  sed: 3\n")
    result = run_cli("run", path, "--root", tmp_path / "runs")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        (
            f"pythia-suite: error: {path}:3: field 'train.sed': unknown key (known: models, "
            "variants, seed, checkpoints, precision, threads)"
        )
    ]
    assert not (tmp_path / "runs").exists()  # nothing written for a bad config
    for args, start in (
        (["--preset", "huge"], "--preset: unknown preset 'huge'"),
        (["--preset", "tiny", "--name", "a/b"], "--name: must be a plain"),
    ):
        result = run_cli("run", *args, "--root", tmp_path / "runs")
        assert result.returncode == 2 and result.stderr.startswith(f"pythia-suite: error: {start}")


def test_the_stage_graph_comes_from_the_study_table_and_the_plan(tmp_path: Path) -> None:
    """Studies come from the explicit table (no discovery); the branch is one more train stage;
    nothing is written while the graph is built."""
    from pythia_suite.suite.config import STUDIES
    from pythia_suite.suite.layout import Layout
    from pythia_suite.suite.stages import build_stages
    from pythia_suite.suite.study_table import STUDY_TABLE

    assert STUDIES == tuple(STUDY_TABLE) == ("memorization", "term_frequency", "bias")
    config = load_config(write_yaml(tmp_path / "s.yaml", "studies:\n  bias: {}\n"), preset="tiny")
    layout = Layout(root=tmp_path / "runs" / "tiny")
    stages = build_stages(config, layout, source="s.yaml")
    assert [s.slug for s in stages][-2:] == ["study-bias", "report"]
    assert [s.slug for s in stages if s.always] == [
        "verify-pythia-nano-standard",
        "verify-pythia-nano-deduped",
    ]
    config = load_config(
        write_yaml(tmp_path / "b.yaml", "branch:\n  enabled: true\n"), preset="tiny"
    )
    slugs = [s.slug for s in build_stages(config, layout, source="b.yaml")]
    assert "train-pythia-nano-standard-pronoun-swap" in slugs
    assert not layout.root.exists()


def test_an_unknown_study_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """term_frequency used to log 'ignoring options' and go on."""
    path = write_yaml(tmp_path / "s.yaml", "studies:\n  term_frequency: {shots: [0], rows: 8}\n")
    result = run_cli("run", path, "--preset", "tiny", "--root", tmp_path / "runs")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        (
            f"pythia-suite: error: {path}: field 'studies.term_frequency.rows': unknown option "
            "(known: checkpoints, shots, x2, processes)"
        )
    ]
    assert not (tmp_path / "runs").exists()  # refused before any work


def test_saved_config_is_yaml_with_every_section(tmp_path: Path) -> None:
    data = yaml.safe_load(dump_config(load_config(None, preset="default")))
    assert list(data) == [
        "name",
        "corpus",
        "dedup",
        "tokenizer",
        "data",
        "train",
        "branch",
        "studies",
        "external",
    ]
