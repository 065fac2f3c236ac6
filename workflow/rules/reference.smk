rule fetch_reference:
    output:
        fasta="resources/genomes/{genome}/genome.fa",
        fai="resources/genomes/{genome}/genome.fa.fai",
        gff="resources/genomes/{genome}/genes.gff3",
    params:
        source=config["reference"]["source"],
    log:
        "logs/fetch_reference/{genome}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "dnadiff fetch-reference --source {params.source:q}"
        " --outdir $(dirname {output.fasta:q}) --cache-dir resources/downloads > {log:q} 2>&1"


rule fetch_text:
    input:
        unpack(lambda wc: local_text_source()),
    output:
        CORPUS,
    params:
        source=config["text"]["source"],
    log:
        f"logs/fetch_text/{config['text']['name']}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "dnadiff fetch-text --source {params.source:q} --out {output:q}"
        " --cache-dir resources/downloads > {log:q} 2>&1"
