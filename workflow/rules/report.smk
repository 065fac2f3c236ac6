# The report's front page: the run's headline numbers, read from its result files (the
# Snakefile's `report:` points at it once it exists). A second of Python over small files: it
# runs where Snakemake runs, never as a cluster job.


rule report_front_page:
    input:
        unpack(front_page_inputs),
    output:
        "results/{run}/report/front.rst",
    log:
        "logs/report_front_page/{run}.log",
    localrule: True
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cfg=config_json(
            "run", "modality", "data", "diffusion", "text" if TEXT else "reference"
        ),
        files=front_page_options,
    shell:
        "dnadiff report front-page --config-json {params.cfg:q} {params.files}"
        " --out {output:q} > {log:q} 2>&1"
