rule glue_test:
    """GLUE test-server files of one method at its Table 1 points (first seed); with data.with_test."""
    input:
        selected=rules.table1.output.selected,
        models=lambda wc: [
            folder
            for t in method_tasks(wc.method)
            for folder in trained_folders(t, wc.method, SEEDS[0])
        ],
        data=lambda wc: [f"{W}/data/{t}.pt" for t in method_tasks(wc.method)],
    output:
        directory(f"{R}/glue_test/{{method}}"),
    log:
        f"{R}/logs/glue_test/{{method}}.log",
    conda:
        "../../environment.yml"
    resources:
        mem_mb=job_resource(lambda wc: f"glue_test/{wc.method}", "mem_mb"),
        runtime=job_resource(lambda wc: f"glue_test/{wc.method}", "runtime"),
        gpu=config["resources"]["method"]["gpu"],
    params:
        tasks=lambda wc: method_tasks(wc.method),
        model_dirs=lambda wc: [
            weights_dir(t, wc.method, SEEDS[0]) for t in method_tasks(wc.method)
        ],
        method_params=lambda wc: config["methods"][wc.method],
        device=config["latency"]["device"],
    script:
        "../scripts/glue_test.py"
