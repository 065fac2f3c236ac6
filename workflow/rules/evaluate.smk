rule evaluate_likelihood:
    input:
        checkpoint="results/{run}/model.pt",
        data="results/{run}/data",
    output:
        json="results/{run}/likelihood.json",
        tsv=report(
            "results/{run}/likelihood.tsv",
            caption="../report/likelihood.rst",
            category="Held-out likelihood",
        ),
    params:
        cfg=config_json("run", "evaluate"),
    log:
        "logs/evaluate_likelihood/{run}.log",
    benchmark:
        "benchmarks/evaluate_likelihood/{run}.tsv"
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "dnadiff evaluate likelihood --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input.checkpoint:q} --data {input.data:q}"
        " --out-json {output.json:q} --out-tsv {output.tsv:q} > {log:q} 2>&1"


rule evaluate_samples:
    input:
        samples="results/{run}/samples.fa",
        data="results/{run}/data",
    output:
        json="results/{run}/sample_stats.json",
        tsv=report(
            "results/{run}/kmer_js.tsv",
            caption="../report/kmer_js_table.rst",
            category="Generated sequences",
        ),
        kmer=report(
            "results/{run}/kmer_js.png",
            caption="../report/kmer_js.rst",
            category="Generated sequences",
        ),
        gc=report(
            "results/{run}/gc_content.png",
            caption="../report/gc_content.rst",
            category="Generated sequences",
        ),
    params:
        cfg=config_json("run", "evaluate"),
    log:
        "logs/evaluate_samples/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "dnadiff evaluate samples --config-json {params.cfg:q} --samples {input.samples:q}"
        " --data {input.data:q} --out-json {output.json:q} --out-tsv {output.tsv:q}"
        " --plot-kmer {output.kmer:q} --plot-gc {output.gc:q} > {log:q} 2>&1"
