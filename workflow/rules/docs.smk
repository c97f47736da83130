# docs/results.md: every committed profile's results described, each number read from its files
# (dpbert/reporting/results_doc.py), and each profile's planned cost (python -m dpbert.tools.plan).
# It reads the committed files of every profile whatever the run's profile and trains nothing:
#   snakemake --cores 1 docs/results.md --allowed-rules results_doc
# (--allowed-rules: describe the committed files as they are; Snakemake never rebuilds them first).
from dpbert.reporting import results_doc as _results_doc  # noqa: E402
from dpbert.run.profiles import config_dir as _config_dir  # noqa: E402
from dpbert.run.profiles import profile_files as _profile_files  # noqa: E402

# profile -> its config file (demo: config.yaml); the plan of each goes into the page
DOC_PLANS = {
    name: str(path)
    for name, path in _profile_files(_config_dir(workflow.basedir)).items()
}


localrules:
    results_doc,


rule results_doc:
    """docs/results.md from the committed results of every profile (a Table 1 in results/ or
    results/<profile>/) and the plan of each profile file."""
    input:
        lambda wildcards: [
            f
            for p in _results_doc.committed_profiles(list(DOC_PLANS))
            for f in _results_doc.doc_inputs(p)
        ]
        + list(DOC_PLANS.values())
        + [f for f in _results_doc.BENCH_FILES.values() if os.path.isfile(f)],
    output:
        "docs/results.md",
    log:
        f"{W}/logs/results_doc.log",
    conda:
        "../../environment.yml"
    params:
        profiles=lambda wildcards: _results_doc.committed_profiles(list(DOC_PLANS)),
        plans=DOC_PLANS,
        root=workflow.basedir,
    script:
        "../scripts/results_doc.py"
