rule prepare:
    input:
        fasta=f"resources/genomes/{GENOME}/genome.fa",
    output:
        directory("results/{run}/data"),
    params:
        cfg=config_json("run", "data"),
    log:
        "logs/prepare/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "dnadiff prepare --config-json {params.cfg:q} --fasta {input.fasta:q}"
        " --outdir {output:q} > {log:q} 2>&1"
