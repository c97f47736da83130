"""docs/results.md: what each profile's committed results say, every number read from its files.

``build_results_doc`` is a pure function of the files' contents (Table 1, the health verdicts, the
reproduction report, an optional ``rule_benchmarks.csv``) and of the plan's text per profile
(``python -m dpbert.tools.plan``); ``read_profile`` reads one profile's files. The rule
``results_doc`` (workflow/rules/docs.smk) writes the page; nothing in it is typed by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dpbert.reporting.layout import common_tasks, tasks_of_table
from dpbert.reporting.records import read_csv
from dpbert.run.profiles import figures_dir, results_dir

COMMAND = "snakemake --cores 1 docs/results.md --allowed-rules results_doc"
REFERENCE_ROW = "BERT-base"
CLAIMS_HEADING = "## Headline claims"
BENCHMARK_COLUMNS = ["method", "jobs", "total_s", "train_s", "score_s", "latency_s", "share"]


@dataclass(frozen=True)
class ProfileResults:
    """One profile's committed reporting files, read (``read_profile``) or built in a test."""

    profile: str
    table1: pd.DataFrame
    health: pd.DataFrame
    reproduction: str
    benchmarks: pd.DataFrame | None = None  # results/<profile>/rule_benchmarks.csv, when committed
    serving: pd.DataFrame | None = None  # results/<profile>/serving.csv, when committed
    has_figure3: bool = True

    @property
    def results(self) -> str:
        return results_dir(self.profile)

    @property
    def figures(self) -> str:
        return figures_dir(self.profile)


def profile_inputs(profile: str) -> dict[str, str]:
    """The files of ``profile`` the page reads (paths from the repository root)."""
    r = results_dir(profile)
    return {"table1": f"{r}/table1.csv", "health": f"{r}/health.csv", "reproduction": f"{r}/reproduction.md"}


def committed_profiles(names: Sequence[str], root: str | Path = ".") -> list[str]:
    """The profiles among ``names`` (in their order) whose results are in the checkout (a Table 1)."""
    return [n for n in names if (Path(root) / profile_inputs(n)["table1"]).is_file()]


def doc_inputs(profile: str, root: str | Path = ".") -> list[str]:
    """Every file of ``profile`` the page reads: its Table 1, health, reproduction report, and Figure 3,
    rule_benchmarks.csv and serving.csv where present."""
    optional = [f"{figures_dir(profile)}/figure3.png", f"{results_dir(profile)}/rule_benchmarks.csv",
                f"{results_dir(profile)}/serving.csv"]
    return list(profile_inputs(profile).values()) + [f for f in optional if (Path(root) / f).is_file()]


def read_profile(profile: str, root: str | Path = ".") -> ProfileResults:
    root = Path(root)
    paths = {k: root / v for k, v in profile_inputs(profile).items()}
    bench = root / results_dir(profile) / "rule_benchmarks.csv"
    serving = root / results_dir(profile) / "serving.csv"
    return ProfileResults(
        profile=profile, table1=read_csv(paths["table1"]), health=read_csv(paths["health"]),
        reproduction=paths["reproduction"].read_text(encoding="utf-8"),
        benchmarks=read_csv(bench) if bench.is_file() else None,
        serving=read_csv(serving) if serving.is_file() else None,
        has_figure3=(root / figures_dir(profile) / "figure3.png").is_file())


# --------------------------------------------------------------------------- reading the files
def _fmt(x: float, digits: int = 1) -> str:
    return "—" if pd.isna(x) else f"{float(x):.{digits}f}"


def _x(x: float) -> str:
    return "—" if pd.isna(x) else f"{float(x):.2f}x"


def section(markdown: str, heading: str, where: str) -> list[str]:
    """The lines under the ``heading`` (a prefix of a "## " line) up to the next "## " heading."""
    lines = markdown.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    if not starts:
        raise ValueError(f"{where} has no section {heading!r}: it is not a reproduction report of this "
                         f"version. Rebuild it with the profile's run (rule reproduction).")
    body = []
    for line in lines[starts[0] + 1:]:
        if line.startswith("## "):
            break
        body.append(line)
    return body


def provenance(reproduction: str, where: str) -> list[str]:
    """The reproduction report's provenance bullets (profile and its note, data, backbone, device, seeds,
    window), without the line about where its numbers come from."""
    return [line for line in section(reproduction, "## Provenance", where)
            if line.startswith("- ") and not line.startswith("- every number")]


_CLAIM = re.compile(r"^(\s*)(?:\d+\.|-)\s+(?:\*\*(?P<q>.+?)\*\*\s*)?(?P<vs>vs [^:]+:\s*)?(?P<rest>.*)$")
_VERDICT = re.compile(r"^(?P<verdict>[A-Z][A-Z ()/,-]*?)\.(?:\s+(?P<why>.*?(?:\.(?=\s|$)|$)))?")


def claims(reproduction: str, where: str) -> list[str]:
    """The headline claims as Markdown list lines: each question (or "vs <row>") with its answer and the
    sentence that gives the answer's numbers, read from the reproduction report."""
    out = []
    for line in section(reproduction, CLAIMS_HEADING, where):
        m = _CLAIM.match(line)
        if not line.strip() or not m:
            continue
        indent = "  " if m.group(1) else ""
        label = (m.group("q") or "") + (m.group("vs") or "").strip()
        v = _VERDICT.match(m.group("rest").strip())
        answer = ""
        if v:
            answer = f" **{v.group('verdict')}.**" + (f" {v.group('why').strip()}" if v.group("why") else "")
        out.append(f"{indent}- {label}{answer}".rstrip())
    if not out:
        raise ValueError(f"{where}'s section {CLAIMS_HEADING!r} lists no claims. Rebuild it with the profile's run.")
    return out


def table1_rows(table1: pd.DataFrame) -> list[str]:
    """Table 1 per row: the speed-ups, avg, covered tasks and the cells health marks degenerate."""
    lines = ["| model | speed-up (selecting) | layer | latency | avg | covered | degenerate cells (§) |",
             "|---|---|---|---|---|---|---|"]
    for _, r in table1.iterrows():
        degenerate = r.get("degenerate", "")
        degenerate = "" if pd.isna(degenerate) else str(degenerate).replace(";", ", ")
        lines.append(f"| {r['model']} | {_x(r['speedup'])} | {_x(r['speedup_layer'])} | {_x(r['speedup_latency'])} "
                     f"| {_fmt(r['avg'])} | {r['covered']} | {degenerate or '—'} |")
    return lines


def table1_summary(table1: pd.DataFrame) -> str:
    """What the averages say: the reference, the best other row, and DPBERT's rank among the rows."""
    tasks = common_tasks(table1, tasks_of_table(table1))
    scored = table1.dropna(subset=["avg"])
    parts = [f"avg is over {', '.join(tasks) if tasks else 'no task'} (the tasks every row with a score covers)."]
    ref = scored[scored["model"] == REFERENCE_ROW]
    others = scored[scored["model"] != REFERENCE_ROW].sort_values("avg", ascending=False, kind="stable")
    if not ref.empty and not others.empty:
        ref_avg = float(ref["avg"].iloc[0])
        best = others.iloc[0]
        at_least = others[others["avg"] >= ref_avg]["model"].tolist()
        parts.append(f"{REFERENCE_ROW} averages {_fmt(ref_avg)}; the highest other row is {best['model']} "
                     f"({_fmt(best['avg'])} at {_x(best['speedup'])}); "
                     + (f"{len(at_least)} row(s) reach {REFERENCE_ROW}'s average: {', '.join(at_least)}."
                        if at_least else f"no other row reaches {REFERENCE_ROW}'s average."))
    ranked = scored.sort_values("avg", ascending=False, kind="stable")["model"].tolist()
    if "DPBERT" in ranked:
        row = scored[scored["model"] == "DPBERT"].iloc[0]
        parts.append(f"DPBERT at its trained rule averages {_fmt(row['avg'])} at {_x(row['speedup'])}, "
                     f"{ranked.index('DPBERT') + 1} of {len(ranked)} rows by average.")
    return " ".join(parts)


def health_lines(health: pd.DataFrame) -> list[str]:
    """How many (task, row) verdicts are ok, and every degenerate one with its reason."""
    verdict = health["verdict"].astype(str)
    bad = health[verdict.str.startswith("degenerate")]
    lines = [f"{len(health) - len(bad)} of {len(health)} (task, row) verdicts are `ok`; {len(bad)} are degenerate."]
    if len(bad):
        lines += ["", "| task | model | verdict |", "|---|---|---|"]
        for _, r in bad.iterrows():
            why = str(r["verdict"]).split(":", 1)[1].strip() if ":" in str(r["verdict"]) else str(r["verdict"])
            lines.append(f"| {r['task']} | {r['display_name']} | {why.replace('|', '/')} |")
    return lines


def benchmark_lines(p: ProfileResults) -> list[str]:
    if p.benchmarks is None:
        return [f"No `{p.results}/rule_benchmarks.csv` is committed. After a run of the profile, the run's own "
                f"command with the target `{p.results}/rule_benchmarks.csv` writes it from each job's phases.json; "
                f"this page then shows it."]
    b = p.benchmarks
    cols = [c for c in BENCHMARK_COLUMNS if c in b.columns]
    lines = [f"From `{p.results}/rule_benchmarks.csv` (seconds of job time; share of the run's job time): "
             f"{_fmt(b['total_s'].sum(), 0)} s in {int(b['jobs'].sum())} jobs.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in b.iterrows():
        cells = [f"{100 * r[c]:.0f}%" if c == "share" else str(int(r[c])) if c == "jobs"
                 else _fmt(r[c], 0) if c.endswith("_s") else str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def serving_lines(p: ProfileResults) -> list[str]:
    """``serving.csv``: per served point, its layer speed-up and, per batch order and size, the throughput
    speed-up over BERT-base / the survival (throughput speed-up / layer speed-up)."""
    if p.serving is None or p.serving.empty:
        return [f"No `{p.results}/serving.csv` is committed. The run's own command with the target "
                f"`{p.results}/serving.csv` (rule `serving`, in `all`) writes it from the run's models; this page "
                "then shows it."]
    s = p.serving
    configs = list(dict.fromkeys(zip(s["order"], s["batch_size"])))
    first = s.iloc[0]
    lines = [f"From `{p.results}/serving.csv`: {int(first['n_examples'])} dev examples of "
             f"{', '.join(dict.fromkeys(s['task']))} on {first['device']}; each cell the throughput speed-up over "
             "BERT-base at that batch order and size / its survival (throughput speed-up / layer speed-up; 1.00: "
             "the layer saving survives batching in full). Decisions and heads "
             + ("per row, as at batch size 1 (`serving.exact`)" if bool(s.get("exact", pd.Series([False])).any())
                else "once per layer on the rows in the batch")
             + f"; a row's prediction or executed layers differ from batch size 1 in "
             f"{int(s[['prediction_differences', 'layer_differences']].max(axis=1).sum())} of "
             f"{int(s['agreement_n'].sum())} row comparisons.", "",
             "| task | row | layer x | " + " | ".join(f"{o} {int(b)}" for o, b in configs) + " |",
             "|" + "---|" * (3 + len(configs))]
    for (task, name, chosen), g in s.groupby(["task", "display_name", "chosen_on"], sort=False):
        cell = {(r["order"], r["batch_size"]): f"{r['throughput_speedup']:.2f}x / {r['survival']:.2f}"
                for _, r in g.iterrows()}
        label = name if chosen == "both folds" else f"{name} ({chosen})"
        lines.append(f"| {task} | {label} | {_x(g['layer_speedup'].iloc[0])} | "
                     + " | ".join(cell.get(c, "—") for c in configs) + " |")
    return lines


BENCH_FILES = {"speedup_bench": "results/speedup_bench.json", "pytest_benchmark": "results/benchmarks.json"}
"""Benchmark outputs the page shows when they are in the checkout, and the commands that write them."""
BENCH_COMMANDS = {
    "speedup_bench": "python -m dpbert.tools.speedup_bench --shape bert-base --json results/speedup_bench.json",
    "pytest_benchmark": "python -m pytest tests/benchmarks --benchmark-only --benchmark-json=results/benchmarks.json",
}


def speedup_bench_lines(rows: Sequence[Mapping]) -> list[str]:
    """``python -m dpbert.tools.speedup_bench --json``'s rows: each case's latency and its ratio of latency
    speed-up to layer speed-up (1.0: the skipped layers' time is saved in full)."""
    first = rows[0]
    lines = [f"{first['shape']} shape on {first['device']}; the plain Hugging Face forward "
             f"{_fmt(first['hf_ms'], 3)} ms an example.", "",
             "| case | ms | latency speed-up | layer speed-up | ratio vs HF | ratio vs engine |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {_fmt(r['ms'], 3)} | {_x(r['latency_speedup'])} | {_x(r['layer_speedup'])} "
                     f"| {_fmt(r['ratio'], 3)} | {_fmt(r['ratio_vs_engine'], 3)} |")
    return lines


def pytest_benchmark_lines(data: Mapping) -> list[str]:
    """pytest-benchmark's JSON: each benchmark's median and spread, by group (compare within a group)."""
    machine = data.get("machine_info", {})
    where = ", ".join(str(machine[k]) for k in ("cpu", "processor", "python_version") if machine.get(k)
                      and not isinstance(machine[k], dict)) or "machine not recorded"
    lines = [f"{where}.", "", "| group | benchmark | median (ms) | min (ms) | max (ms) | rounds |", "|---|---|---|---|---|---|"]
    for b in sorted(data.get("benchmarks", []), key=lambda b: (str(b.get("group")), b["name"])):
        st = b["stats"]
        lines.append(f"| {b.get('group') or '—'} | {b['name']} | {_fmt(1000 * st['median'], 3)} | "
                     f"{_fmt(1000 * st['min'], 3)} | {_fmt(1000 * st['max'], 3)} | {st['rounds']} |")
    return lines


def bench_lines(benches: Mapping[str, object]) -> list[str]:
    """The speed-up bench's and pytest-benchmark's figures where their files are given, else the command."""
    out: list[str] = []
    for key, title, render in (("speedup_bench", "Skipping half the layers", speedup_bench_lines),
                               ("pytest_benchmark", "The pytest-benchmark suite", pytest_benchmark_lines)):
        out += ["", f"### {title} (`{BENCH_FILES[key]}`)", ""]
        if benches.get(key):
            out += render(benches[key])
        else:
            out.append(f"No `{BENCH_FILES[key]}` is committed; `{BENCH_COMMANDS[key]}` writes it, and this page "
                       "then shows it.")
    return out


def plan_lines(plan: str) -> list[str]:
    """The plan's text without its longest-jobs line (kept: the costs, device time, critical path, schedule)."""
    return "\n".join(line for line in plan.strip().splitlines() if not line.startswith("Longest jobs")).strip().splitlines()


# --------------------------------------------------------------------------- the page
def build_results_doc(profiles: Sequence[ProfileResults], plans: Mapping[str, str],
                      benches: Mapping[str, object] | None = None, command: str = COMMAND) -> str:
    """The whole page: per profile its provenance, Table 1's rows, the health verdicts, the claims answered
    and Figure 3; then each profile's planned cost; then the benchmark figures (``benches``: the parsed
    files of ``BENCH_FILES`` that exist) and each profile's job times, where committed."""
    if not profiles:
        raise ValueError("no profile has committed results (results/table1.csv, results/<profile>/table1.csv): "
                         "nothing to describe. Run a profile first.")
    out = [
        "# Results",
        "",
        f"Generated by `{command}` (rule `results_doc`, `dpbert/reporting/results_doc.py`) from the committed "
        "files named in each section; do not edit it by hand, rerun the command. It reads files only: "
        "no training or timing (`--allowed-rules results_doc` keeps Snakemake from rebuilding a profile's "
        "results first: the page describes the committed ones).",
        "",
        "Profiles: " + ", ".join(f"[{p.profile}](#{p.profile})" for p in profiles)
        + ". Cost of each profile: [Cost](#cost). Measured job times: [Benchmarks](#benchmarks).",
    ]
    for p in profiles:
        r = p.results
        out += ["", f"## {p.profile}", "", *provenance(p.reproduction, f"{r}/reproduction.md"), "",
                f"### Table 1, per row (`{r}/table1.csv`)", "",
                "Scores per task with their standard errors: "
                f"[{r}/table1.md](../{r}/table1.md). {table1_summary(p.table1)}", "",
                *table1_rows(p.table1), "",
                f"### Method health (`{r}/health.csv`)", "", *health_lines(p.health), "",
                f"### The paper's claims (`{r}/reproduction.md`)", "",
                *claims(p.reproduction, f"{r}/reproduction.md")]
        if p.has_figure3:
            out += ["", f"### Figure 3 (`{p.figures}/figure3.png`)", "",
                    f"![Figure 3, profile {p.profile}: score against speed-up](../{p.figures}/figure3.png)"]
    out += ["", "## Cost", "",
            "Estimated by `python -m dpbert.tools.plan --configfile <profile's file>` at each profile's "
            "per-example costs: its measurement stored in `workflow/costs/` (`--measure --store` on its device), "
            "else its typed `resources.train_ms` / `forward_ms`, assumed (each plan's first line says which). "
            "Each plan is of the profile file as it is: a `--config` override "
            "(fewer tasks, another data folder) changes it."]
    for name, plan in plans.items():
        out += ["", f"### {name}: planned cost", "", *plan_lines(plan)]
    out += ["", "## Benchmarks", "", "How they are measured: [benchmarks.md](benchmarks.md).",
            *bench_lines(benches or {})]
    for p in profiles:
        out += ["", f"### {p.profile}: job times", "", *benchmark_lines(p)]
        out += ["", f"### {p.profile}: serving throughput", "", *serving_lines(p)]
    return "\n".join(out) + "\n"
