"""Tests of the papers database: validation, the generated index, figures and the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import yaml

from bs_lib.cli import main
from bs_lib.course import survey

FIXTURES = Path(__file__).parent / "fixtures" / "papers"
VALID = FIXTURES / "valid"
BROKEN = FIXTURES / "broken"


def problem_texts(folder: Path) -> list[str]:
    return [str(p) for p in survey.check_folder(folder)[1] if p.severity == "error"]


def assert_reported(problems: list[str], file: str, field: str, *words: str) -> None:
    """One problem names ``file`` and ``field`` and contains every word."""
    matching = [p for p in problems if file in p and f"field '{field}'" in p]
    assert matching, f"no problem for {file} / {field} in:\n" + "\n".join(problems)
    assert any(all(w in p for w in words) for p in matching), matching


# --------------------------------------------------------------------------- loading


def test_valid_fixture_loads_every_entry_in_index_order():
    papers = survey.load_papers(VALID)
    assert [p.id for p in papers] == ["juhasz-2010", "gusarev-2017", "bs-ldm-2025", "unet-plus-plus-2018"]
    gusarev = papers[1]
    assert gusarev.group == "bone suppression" and gusarev.also_in == ("autoencoder",)
    assert gusarev.short_authors == "M. Gusarev et al."
    assert papers[3].group == "adjacent field"


def test_markdown_entry_reads_its_front_matter():
    (juhasz,) = [p for p in survey.load_papers(VALID) if p.id == "juhasz-2010"]
    assert juhasz.path.suffix == ".md"
    assert juhasz.authors == ("S. Juhász", "Á. Horváth", "et al.")
    assert juhasz.short_authors == "S. Juhász et al."
    assert juhasz.code is None and juhasz.metrics == ()


def test_metrics_keep_value_unit_and_source():
    (bs_ldm,) = [p for p in survey.load_papers(VALID) if p.id == "bs-ldm-2025"]
    psnr, bsr = bs_ldm.metrics
    assert (psnr.name, psnr.value, psnr.unit, psnr.resolution, psnr.source) == ("PSNR", 33.22, "dB", 1024, "paper")
    assert bsr.value_in("percent") == pytest.approx(94.16)
    assert bs_ldm.paper_url == "https://arxiv.org/abs/2412.15670"
    with pytest.raises(ValueError, match="cannot convert PSNR from unit 'dB' to 'percent'"):
        psnr.value_in("percent")


def test_frames_have_one_row_per_paper_and_per_metric():
    papers = survey.load_papers(VALID)
    assert len(survey.papers_frame(papers)) == 4
    metrics = survey.metrics_frame(papers)
    assert len(metrics) == 4
    assert set(metrics["source"]) == {"paper", "re-evaluation"}


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"papers folder .*nowhere does not exist"):
        survey.load_papers(tmp_path / "nowhere")


# --------------------------------------------------------------------------- validation


def test_broken_fixture_reports_every_error_with_file_field_and_fix():
    problems = problem_texts(BROKEN)
    bad = "broken-2020.yaml"
    assert_reported(problems, bad, "year", "expected an integer between 1990 and 2027, got '2020a'",
                    "Fix the year")
    assert_reported(problems, bad, "category", "unknown value 'gans'", "Did you mean 'gan'?")
    assert_reported(problems, bad, "metrics[0].value", "expected a number, got '33.2 dB'", "without quotes")
    assert_reported(problems, bad, "metrics[0].unit", "unknown value 'decibel'", "dB, fraction")
    assert_reported(problems, bad, "metrics[1].source", "Did you mean 're-evaluation'?")
    assert_reported(problems, bad, "metrics[1].value", "95.4 is not a fraction", "unit: percent")
    assert_reported(problems, bad, "code", "not a well-formed http(s) URL")
    assert_reported(problems, bad, "links.doi", "looks like a placeholder")
    assert_reported(problems, bad, "summary.method", "required summary key is missing")


def test_unknown_field_is_an_error_with_a_suggestion():
    problems = problem_texts(BROKEN)
    assert_reported(problems, "typo-2019.yaml", "catgory", "unknown field", "Did you mean 'category'?")
    assert_reported(problems, "typo-2019.yaml", "category", "required field is missing")


def test_identity_and_database_errors():
    problems = problem_texts(BROKEN)
    assert_reported(problems, "wrong-name-2017.yaml", "id", "'Other_Name' is not a slug")
    assert_reported(problems, "wrong-name-2017.yaml", "authors", "the list is empty")
    assert_reported(problems, "wrong-name-2017.yaml", "year", "got 1850")
    assert_reported(problems, "wrong-name-2017.yaml", "also_in", "repeats the main category 'cnn'")
    assert_reported(problems, "wrong-name-2017.yaml", "evidence", "unknown value 'maybe'")
    assert_reported(problems, "wrong-name-2017.yaml", "summary.extra", "unknown summary key")
    assert_reported(problems, "twin-2018.yaml", "id", "duplicate id 'twin-2018'", "twin-2018.md")
    assert_reported(problems, "twin-2018.yaml", "title", "the same title as")
    # titles are compared after lower-casing and dropping punctuation
    assert_reported(problems, "wrong-name-2017.yaml", "title", "the same title as")
    assert any("not-yaml-2021.yaml: is not valid YAML at line 4" in p for p in problems)


def test_a_star_or_a_category_without_its_source_is_an_error():
    problems = problem_texts(BROKEN)
    assert_reported(problems, "unsourced-2022.yaml", "sources.highlighted", "highlighted: true has no source",
                    "Say where the star comes from", "or remove highlighted")
    assert_reported(problems, "unsourced-2022.yaml", "sources.category",
                    "category 'cnn' departs from the survey list's 'application' without a reason",
                    "set category: application")
    assert_reported(problems, "unsourced-2022.yaml", "metrics[0].target", "unknown value 'bones'",
                    "Did you mean 'bone'?")


def entry_with(tmp_path: Path, extra: str, entry: str = "gusarev-2017.yaml") -> list[str]:
    """The errors of a valid fixture entry after adding the YAML lines ``extra``."""
    text = (VALID / entry).read_text(encoding="utf-8").replace("sources:", "old_sources:", 1)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("old_sources:"))
    (tmp_path / entry).write_text(text + "\n" + extra, encoding="utf-8")
    return problem_texts(tmp_path)


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ("sources: {highlighted: 'a star in the survey list'}", None, ()),
        ("", "sources.highlighted", ("has no source",)),
        ("sources: {highlighted: ''}", "sources.highlighted", ("expected a non-empty string",)),
        ("sources: {highlighted: 'list', categroy: 'why'}", "sources.categroy", ("not a sourced field",)),
        ("sources: [a star]", "sources", ("expected a mapping",)),
        ("sources: {highlighted: 'list'}\nsurvey_category: cnn", None, ()),
        ("sources: {highlighted: 'list'}\nsurvey_category: autoencoder", "sources.category",
         ("departs from the survey list's 'autoencoder'",)),
        ("sources: {highlighted: 'list', category: 'its networks are CNNs'}\nsurvey_category: autoencoder",
         None, ()),
        ("sources: {highlighted: 'list'}\nsurvey_category: gans", "survey_category", ("Did you mean 'gan'?",)),
    ],
)
def test_sourced_fields(tmp_path, extra, field, words):
    problems = entry_with(tmp_path, extra)
    if field is None:
        assert problems == []
    else:
        assert_reported(problems, "gusarev-2017.yaml", field, *words)


def test_a_source_for_a_star_that_is_not_claimed_is_an_error(tmp_path):
    problems = entry_with(tmp_path, "sources: {highlighted: 'a star'}", entry="unet-plus-plus-2018.yaml")
    assert_reported(problems, "unet-plus-plus-2018.yaml", "sources.highlighted", "does not claim",
                    "Set highlighted: true")


def test_id_must_equal_the_file_name(tmp_path):
    shutil.copy(VALID / "gusarev-2017.yaml", tmp_path / "gusarev-2018.yaml")
    (problem,) = problem_texts(tmp_path)
    assert "gusarev-2018.yaml: field 'id': 'gusarev-2017' differs from the file name" in problem
    assert "Rename the file to gusarev-2017.yaml" in problem


def test_load_papers_raises_with_every_error():
    with pytest.raises(survey.PaperDatabaseError, match=r"\d+ problem\(s\) in the papers database") as caught:
        survey.load_papers(BROKEN)
    assert len(caught.value.problems) >= 20
    assert all(p.severity == "error" for p in caught.value.problems)


def test_placeholder_summary_is_a_warning_not_an_error():
    problems = [p for p in survey.check_folder(BROKEN)[1] if "typo-2019" in p.path]
    warnings = [p for p in problems if p.severity == "warning"]
    assert [w.field for w in warnings] == ["summary.problem"]
    assert str(warnings[0]).startswith("warning: ")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://github.com/diaoquesang/BS-LDM", None),
        ("github.com/x/y", "not a well-formed"),
        ("ftp://example.net/file", "not a well-formed"),
        ("https://doi.org/10.1109/JBHI.2025.xxx", "placeholder"),
        ("https://arxiv.org/abs/1234 5678", "not a well-formed"),
        (42, "expected a URL string"),
    ],
)
def test_url_problem(value, reason):
    problem = survey.url_problem(value)
    assert problem is None if reason is None else reason in problem


def test_every_category_has_a_heading_and_a_group():
    assert {group for group, _ in survey.CATEGORIES.values()} == {"bone suppression", "adjacent field"}
    assert len(set(survey.CATEGORIES)) == 15


# --------------------------------------------------------------------------- the index


def test_index_groups_by_category_and_sorts_by_year_then_id(tmp_path):
    text = survey.render_index(survey.load_papers(VALID))
    assert text.startswith("# Papers\n")
    assert "4 entries: 3 on bone suppression and 1 from adjacent fields" in text
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == ["### Manual suppression and conventional methods", "### Convolutional neural networks",
                        "### Diffusion models", "### Segmentation, augmentation and distillation"]
    assert text.index("## Bone suppression") < text.index("## Adjacent field")
    row = next(line for line in text.splitlines() if "gusarev-2017.yaml" in line)
    assert row.startswith("| 2017 | [Deep Learning Models for Bone Suppression in Chest Radiographs]"
                          "(gusarev-2017.yaml) ⭐ (also: autoencoder)")
    assert "[code](https://github.com/hmchuong/ML-BoneSuppression)" in row
    assert "PSNR 31.37 dB (SZCH-X-Rays, 1024²) †" in row
    assert "[arxiv](https://arxiv.org/abs/2412.15670)" in text


def test_index_is_deterministic_and_independent_of_file_order(tmp_path):
    papers = survey.load_papers(VALID)
    assert survey.render_index(papers) == survey.render_index(list(reversed(papers)))


def test_index_escapes_pipes_in_cells(tmp_path):
    text = (VALID / "unet-plus-plus-2018.yaml").read_text(encoding="utf-8")
    (tmp_path / "unet-plus-plus-2018.yaml").write_text(text.replace("UNet++: A", "UNet++ | A"), encoding="utf-8")
    index = survey.render_index(survey.load_papers(tmp_path))
    assert "UNet++ \\| A Nested" in index


def test_committed_index_is_up_to_date(tmp_path):
    """Regenerate papers/README.md into a temporary file: it must equal the committed one."""
    regenerated = survey.build_index(survey.PAPERS_DIR, tmp_path / "README.md", figures=False)
    committed = survey.PAPERS_DIR / survey.INDEX_NAME
    assert committed.exists(), "papers/README.md is missing; run: python -m bs_lib papers build"
    assert regenerated.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8"), (
        "papers/README.md is out of date; run: python -m bs_lib papers build"
    )


def test_repository_database_is_valid_and_large_enough():
    papers, problems = survey.check_folder(survey.PAPERS_DIR)
    assert survey.errors_only(problems) == []
    assert len(papers) >= 80
    categories = {p.category for p in papers}
    assert {"manual", "commercial", "autoencoder", "domain-adaptation", "distillation", "gan", "cnn",
            "diffusion"} <= categories


# --------------------------------------------------------------------------- figures


def test_figures_are_matplotlib_figures_with_data():
    papers = survey.load_papers(VALID)
    per_year = survey.plot_papers_per_year(papers, group=None)
    assert sum(patch.get_height() for patch in per_year.axes[0].patches) == 4
    datasets = survey.plot_datasets(papers)
    labels = [t.get_text() for t in datasets.axes[0].get_yticklabels()]
    assert "JSRT / BSE-JSRT" in labels and "SZCH-X-Rays" in labels
    reported = survey.plot_reported_metrics(papers)
    assert "not comparable" in reported._suptitle.get_text()
    assert len(reported.axes) == 2  # one comparison group (SZCH-X-Rays, soft tissue, 1024²) x PSNR, BSR
    plt.close("all")


def test_dataset_families():
    assert survey.dataset_family("JSRT/BSE-JSRT (Kaggle)") == "JSRT / BSE-JSRT"
    assert survey.dataset_family("Gusarev DES (35 images)").startswith("Gusarev")
    assert survey.dataset_family("504 dual-energy subtraction subjects (private)").startswith("other dual")
    assert survey.dataset_family("BS-80K") == survey.OTHER_DATASETS


def test_build_writes_index_and_figures(tmp_path):
    folder = tmp_path / "papers"
    shutil.copytree(VALID, folder)
    target = survey.build_index(folder)
    assert target == folder / "README.md"
    assert sorted(p.name for p in (folder / "figures").iterdir()) == sorted(survey.FIGURE_FILES)
    assert "![papers_per_year.png](figures/papers_per_year.png)" in target.read_text(encoding="utf-8")
    plt.close("all")


# --------------------------------------------------------------------------- the command line


def test_cli_check_passes_on_valid_entries(capsys):
    assert main(["papers", "check", "--folder", str(VALID)]) == 0
    out = capsys.readouterr().out
    assert "papers check: 4 entries OK (3 bone suppression, 1 adjacent field)" in out


def test_cli_check_fails_on_broken_entries_naming_file_and_field(capsys):
    assert main(["papers", "check", "--folder", str(BROKEN)]) == 1
    err = capsys.readouterr().err
    assert "broken-2020.yaml: field 'year': expected an integer between 1990 and 2027, got '2020a'" in err
    assert "typo-2019.yaml: field 'catgory': unknown field" in err
    assert "error(s) in 6 file(s)" in err


def test_cli_build_refuses_a_broken_database(tmp_path, capsys):
    assert main(["papers", "build", "--folder", str(BROKEN), "--output", str(tmp_path / "x.md")]) == 1
    assert "fix the" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_cli_build_check_detects_a_stale_index(tmp_path, capsys):
    folder = tmp_path / "papers"
    shutil.copytree(VALID, folder)
    assert main(["papers", "build", "--folder", str(folder), "--no-figures"]) == 0
    assert main(["papers", "build", "--folder", str(folder), "--check"]) == 0
    entry = folder / "gusarev-2017.yaml"
    entry.write_text(entry.read_text(encoding="utf-8").replace("year: 2017", "year: 2016"), encoding="utf-8")
    assert main(["papers", "build", "--folder", str(folder), "--check"]) == 1
    assert "is out of date" in capsys.readouterr().err


NEW_FLAGS = ["--title", "Bone Suppression: A Test", "--authors", "A. Smith; B. Jones", "et al.",
             "--year", "2024", "--venue", "arXiv", "--category", "gan", "--dataset", "JSRT",
             "--arxiv", "https://arxiv.org/abs/2401.00001"]


def test_cli_new_from_flags_writes_a_valid_skeleton(tmp_path, capsys):
    assert main(["papers", "new", "--folder", str(tmp_path), *NEW_FLAGS]) == 0
    path = tmp_path / "smith-2024.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["authors"] == ["A. Smith", "B. Jones", "et al."]
    assert data["title"] == "Bone Suppression: A Test"
    assert data["links"] == {"arxiv": "https://arxiv.org/abs/2401.00001"}
    problems = survey.validate_entry(data, path)
    assert survey.errors_only(problems) == []
    assert len(problems) == len(survey.SUMMARY_KEYS)  # one TODO warning per summary key
    assert "wrote" in capsys.readouterr().out


def test_cli_new_refuses_to_overwrite(tmp_path, capsys):
    assert main(["papers", "new", "--folder", str(tmp_path), "--id", "mine-2024", *NEW_FLAGS]) == 0
    before = (tmp_path / "mine-2024.yaml").read_text(encoding="utf-8")
    assert main(["papers", "new", "--folder", str(tmp_path), "--id", "mine-2024", *NEW_FLAGS]) == 1
    assert "mine-2024.yaml already exists" in capsys.readouterr().err
    assert (tmp_path / "mine-2024.yaml").read_text(encoding="utf-8") == before


def test_cli_new_with_a_bad_field_writes_nothing(tmp_path, capsys):
    flags = [f if f != "gan" else "gans" for f in NEW_FLAGS]
    assert main(["papers", "new", "--folder", str(tmp_path), *flags]) == 1
    err = capsys.readouterr().err
    assert "smith-2024.yaml: field 'category': unknown value 'gans'. Did you mean 'gan'?" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_new_without_a_terminal_names_the_missing_flags(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["papers", "new", "--folder", str(tmp_path), "--title", "T"]) == 2
    assert "missing --authors --year --venue --category" in capsys.readouterr().err


def test_cli_new_asks_for_missing_fields_in_a_terminal(tmp_path, monkeypatch):
    answers = iter(["A Prompted Paper", "C. Doe; et al.", "2023", "MICCAI", "diffusion", ""])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert main(["papers", "new", "--folder", str(tmp_path)]) == 0
    data = yaml.safe_load((tmp_path / "doe-2023.yaml").read_text(encoding="utf-8"))
    assert (data["title"], data["year"], data["category"]) == ("A Prompted Paper", 2023, "diffusion")


def test_suggest_id_and_slugify():
    assert survey.suggest_id(["M. Gusarev", "R. Kuleev"], 2017) == "gusarev-2017"
    assert survey.suggest_id(["S. Juhász et al."], 2010) == "juhasz-2010"
    assert survey.slugify("UNet++ (2018)") == "unet-2018"


def test_index_counts_other_metrics_instead_of_listing_them(tmp_path):
    text = (VALID / "gusarev-2017.yaml").read_text(encoding="utf-8")
    extra = "  - {name: other, value: 2.7, unit: none, dataset: SZCH-X-Rays, resolution: null, source: paper}\n"
    (tmp_path / "gusarev-2017.yaml").write_text(text.replace("code:", extra + "code:", 1), encoding="utf-8")
    index = survey.render_index(survey.load_papers(tmp_path))
    assert "+1 other number(s) in the entry" in index and "other 2.7" not in index


def test_family_pipelines_draw_one_row_per_family():
    fig = survey.plot_family_pipelines(["GAN", "diffusion"])
    assert len(fig.axes) == 2
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[0] == "GAN" and "generator" in texts
    plt.close(fig)
    with pytest.raises(ValueError, match=r"unknown famil\(y/ies\) \['VAE'\]"):
        survey.plot_family_pipelines(["VAE"])


def test_index_marks_targets_directions_secondary_numbers_and_the_survey_category(tmp_path):
    text = (VALID / "gusarev-2017.yaml").read_text(encoding="utf-8")
    extra = ("  - {name: PSNR, value: 41.5, unit: dB, dataset: private DES, resolution: null, source: secondary,\n"
             "     target: bone}\n"
             "  - {name: AUC, value: 0.75, unit: fraction, dataset: DRRs, resolution: null, source: paper,\n"
             "     better: lower}\n")
    text = text.replace("code:", extra + "code:", 1).replace("also_in: [autoencoder]", "also_in: [autoencoder]\n"
                                                            "survey_category: autoencoder", 1)
    text = text.replace("sources: {", "sources: {category: 'its networks are CNNs', ", 1)
    (tmp_path / "gusarev-2017.yaml").write_text(text, encoding="utf-8")
    (paper,) = survey.load_papers(tmp_path)
    assert [(m.target, m.better) for m in paper.metrics][-2:] == [("bone", "higher"), ("soft", "lower")]
    assert paper.metrics[0].better == "higher" and survey.default_better("LPIPS") == "lower"
    assert paper.survey_category == "autoencoder" and set(paper.sources) == {"highlighted", "category"}
    row = next(line for line in survey.render_index([paper]).splitlines() if "gusarev-2017.yaml" in line)
    assert "(also: autoencoder) (survey list: autoencoder)" in row
    assert "PSNR 41.5 dB (bone image; private DES) ‡" in row
    assert "AUC 0.75 ↓ (DRRs)" in row
    frame = survey.metrics_frame([paper])
    assert list(frame["target"])[-2:] == ["bone", "soft"] and list(frame["better"])[-1] == "lower"


def paper_with(paper_id: str, *metrics: survey.Metric) -> survey.Paper:
    return survey.Paper(id=paper_id, title=paper_id, authors=("A. Author",), year=2020, venue="unknown",
                        category="cnn", evidence="verified", summary={}, path=Path(f"{paper_id}.yaml"),
                        metrics=metrics)


def test_reported_numbers_share_an_axis_only_within_dataset_target_and_resolution():
    szch = {"dataset": "SZCH-X-Rays", "resolution": 1024}
    papers = [
        paper_with("a-2020", survey.Metric("PSNR", 30.0, "dB", source="paper", **szch),
                   survey.Metric("BSR", 0.95, "fraction", source="secondary", **szch)),
        paper_with("b-2021", survey.Metric("PSNR", 31.0, "dB", source="re-evaluation", **szch),
                   survey.Metric("PSNR", 38.0, "dB", source="paper", target="bone", **szch)),
        paper_with("c-2022", survey.Metric("PSNR", 39.0, "dB", source="paper", target="bone", **szch)),
        paper_with("d-2019", survey.Metric("PSNR", 41.5, "dB", "private DES", None, "paper", target="bone")),
    ]
    fig = survey.plot_reported_metrics(papers)
    *groups, footer = fig.subfigs
    titles = [g._suptitle.get_text() for g in groups]
    assert titles == ["SZCH-X-Rays · bone image · 1024²", "SZCH-X-Rays · soft-tissue image · 1024²"]
    drawn = {title: [sorted(float(x) for c in ax.collections for x, _ in c.get_offsets()) for ax in g.axes]
             for title, g in zip(titles, groups, strict=True)}
    assert drawn == {titles[0]: [[38.0, 39.0], []], titles[1]: [[30.0, 31.0], [95.0]]}
    assert "higher is better" in groups[1].axes[0].get_xlabel()
    labels = [t.get_text() for t in footer.legends[0].get_texts()]
    assert labels[0] == "the paper's own number" and labels[2].startswith("secondary")
    hollow = [c for c in groups[1].axes[1].collections if len(c.get_offsets())]
    assert len(hollow) == 1 and hollow[0].get_facecolor().size == 0  # the secondary BSR is drawn hollow
    assert "d-2019 (private DES · bone image · resolution not stated)" in footer.texts[0].get_text()
    plt.close(fig)
