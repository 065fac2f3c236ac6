rule fetch_reference:
    output:
        fasta="resources/genomes/{genome}/genome.fa",
        fai="resources/genomes/{genome}/genome.fa.fai",
        gff="resources/genomes/{genome}/genes.gff3",
    log:
        "logs/fetch_reference/{genome}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        source=config["reference"]["source"],
    shell:
        "dnadiff fetch-reference --source {params.source:q}"
        " --outdir $(dirname {output.fasta:q}) --cache-dir resources/downloads > {log:q} 2>&1"


rule fetch_text:
    input:
        unpack(lambda wc: local_text_source()),
    output:
        CORPUS,
    log:
        f"logs/fetch_text/{config['text']['name']}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        source=config["text"]["source"],
    shell:
        "dnadiff fetch-text --source {params.source:q} --out {output:q}"
        " --cache-dir resources/downloads > {log:q} 2>&1"


rule prepare:
    input:
        **prepare_input(),
    output:
        directory("results/{run}/data"),
    log:
        "logs/prepare/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        cfg=prepare_config(),
        kind="--text" if TEXT else "--fasta",
    shell:
        "dnadiff prepare --config-json {params.cfg:q} {params.kind} {input.source:q}"
        " --outdir {output:q} > {log:q} 2>&1"
