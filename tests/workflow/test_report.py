"""`snakemake --report report.html`: which outputs the rules mark for the report, and captions built from the
profile's own config (tasks, window, seeds, profile), checked on the parsed workflow without running a job."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
import yaml
from docutils.core import publish_parts

from tests.conftest import MICRO, ROOT


def report_items(configfile: Path, workdir: Path) -> dict[str, dict]:
    """Every output a rule marks with report(), by path: its rule, category, labels and its caption rendered as
    `snakemake --report` renders it (Jinja over the job's params and the config, then reStructuredText)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        ResourceSettings,
    )

    items: dict[str, dict] = {}
    with SnakemakeApi(OutputSettings(quiet=True)) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(),
                                config_settings=ConfigSettings(configfiles=[configfile]),
                                snakefile=ROOT / "Snakefile", workdir=workdir)._workflow
        env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
        for rule in workflow.rules:
            for out in rule.output:
                flag = out.flags.get("report")
                if not flag:
                    continue
                sm = SimpleNamespace(config=workflow.config, params=rule.params, input=rule.input, output=rule.output)
                text = env.from_string(Path(flag.caption).read_text()).render(snakemake=sm)
                # a broken caption (an unclosed ``, a bad indent) is an error, not a red box in the report
                with warnings.catch_warnings():  # docutils 0.22 deprecates writer_name, which snakemake passes too
                    warnings.simplefilter("ignore", PendingDeprecationWarning)
                    html = publish_parts(text, writer_name="html",
                                         settings_overrides={"halt_level": 2, "report_level": 5})["body"]
                items[str(out)] = {"rule": rule.name, "category": flag.category, "labels": flag.labels,
                                   "caption": " ".join(text.split()), "html": html}
    return items


@pytest.fixture(scope="module")
def micro_items(tmp_path_factory):
    return report_items(MICRO, tmp_path_factory.mktemp("report_micro"))


def test_report_holds_every_table_health_reproduction_and_figure(micro_items):
    marked = {path: (item["rule"], item["category"]) for path, item in micro_items.items()}
    expected = {
        "results/micro/table1.md": ("table1", "Tables"),  # the ± and the § are only in the markdown
        "results/micro/table1.csv": ("table1", "Tables"),
        "results/micro/table2.md": ("table2", "Tables"), "results/micro/table2.csv": ("table2", "Tables"),
        "results/micro/table3.md": ("table3", "Tables"), "results/micro/table3.csv": ("table3", "Tables"),
        "results/micro/health.md": ("health", "Health"), "results/micro/health.csv": ("health", "Health"),
        "results/micro/reproduction.md": ("reproduction", "Reproduction"),
        "figures/micro/figure3.png": ("figure3", "Figures"), "figures/micro/figure3_full.png": ("figure3", "Figures"),
        "figures/micro/figure4.png": ("figure4", "Figures"),
        "figures/micro/serving.png": ("serving", "Figures"),
    }
    assert marked == expected
    # two files of one table are told apart by their labels
    assert micro_items["results/micro/table1.md"]["labels"]["file"].startswith("markdown")
    assert micro_items["results/micro/table1.csv"]["labels"]["file"].startswith("csv")
    views = {micro_items[f"figures/micro/{f}"]["labels"]["view"] for f in ("figure3.png", "figure3_full.png")}
    assert len(views) == 2


def test_captions_name_the_profiles_own_tasks_window_and_seeds(micro_items):
    cfg = yaml.safe_load(MICRO.read_text())
    window = " to ".join(str(w) for w in cfg["selection"]["window"])  # micro: 1.0 to 4.0
    for path, item in micro_items.items():
        assert "profile ``micro``" in item["caption"] or "Profile ``micro``" in item["caption"], path
    for name in ("table1.md", "health.md", "reproduction.md"):
        caption = micro_items[f"results/micro/{name}"]["caption"]
        assert all(t in caption for t in cfg["tasks"]) and f"{window}x" in caption, name
        assert "1 seed" in caption, name
    fig3 = micro_items["figures/micro/figure3.png"]["caption"]
    # micro's figure3_tasks default is the paper's SST-2 and QNLI; it runs SST-2 only, so the panel is SST-2
    assert "on SST-2 (profile" in fig3 and "QNLI" not in fig3 and f"window {window}x shaded" in fig3
    assert "1 seed: seeds 1" in fig3
    assert "± its bootstrap standard error" in micro_items["results/micro/table1.md"]["caption"]
    serving = micro_items["figures/micro/serving.png"]["caption"]
    sizes = ", ".join(str(b) for b in cfg["serving"]["batch_sizes"])
    assert f"batches of {sizes}, arrival and length order, on SST-2 (first 16 dev examples" in serving



def test_captions_follow_another_config(tmp_path):
    """Other tasks, window and seeds: the captions change with them (no fixed text naming the paper's)."""
    cfg = yaml.safe_load(MICRO.read_text())
    cfg.update(tasks=["MRPC", "RTE"], seeds=[1, 2, 3])
    cfg["selection"]["window"] = [1.2, 2.5]
    cfg.setdefault("reporting", {})["figure3_tasks"] = ["RTE"]  # a task it does not run is refused (config_check)
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(cfg))
    items = report_items(path, tmp_path)
    table1 = items["results/micro/table1.md"]["caption"]
    assert "tasks MRPC, RTE, median over 3 seeds (seeds 1, 2, 3)" in table1 and "SST-2" not in table1
    assert "window 1.2 to 2.5x" in items["results/micro/health.md"]["caption"]
    fig3 = items["figures/micro/figure3.png"]["caption"]
    assert "on RTE (profile ``micro``; median over 3 seeds: seeds 1, 2, 3)" in fig3 and "MRPC" not in fig3
    assert "window 1.2 to 2.5x shaded" in fig3
