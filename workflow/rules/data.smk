rule prepare:
    input:
        **prepare_input(),
    output:
        directory("results/{run}/data"),
    params:
        cfg=prepare_config(),
        kind="--text" if TEXT else "--fasta",
    log:
        "logs/prepare/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "dnadiff prepare --config-json {params.cfg:q} {params.kind} {input.source:q}"
        " --outdir {output:q} > {log:q} 2>&1"
