rule sample:
    input:
        checkpoint="results/{run}/mdlm/model.pt",
    output:
        f"results/{{run}}/{SAMPLES}",
    log:
        "logs/sample/{run}.log",
    benchmark:
        "benchmarks/sample/{run}.tsv"
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        cfg=config_json("run", "sample"),
    shell:
        "dnadiff sample --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input.checkpoint:q} --out {output:q} > {log:q} 2>&1"
