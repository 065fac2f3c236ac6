rule evaluate_likelihood:
    input:
        checkpoint="results/{run}/{objective}/model.pt",
        data="results/{run}/data",
    output:
        json="results/{run}/{objective}/likelihood.json",
        tsv=report(
            "results/{run}/{objective}/likelihood.tsv",
            caption="../report/likelihood.rst",
            category="Held-out likelihood",
            subcategory="{objective}",
        ),
    log:
        "logs/evaluate_likelihood/{run}.{objective}.log",
    benchmark:
        "benchmarks/evaluate_likelihood/{run}.{objective}.tsv"
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        cfg=config_json("run", "evaluate"),
    shell:
        "dnadiff evaluate likelihood --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input.checkpoint:q} --data {input.data:q}"
        " --out-json {output.json:q} --out-tsv {output.tsv:q} > {log:q} 2>&1"


rule compare_likelihood:
    input:
        mdlm="results/{run}/mdlm/likelihood.json",
        ar="results/{run}/ar/likelihood.json",
    output:
        report(
            "results/{run}/likelihood_comparison.tsv",
            caption="../report/likelihood_comparison.rst",
            category="Held-out likelihood",
        ),
    log:
        "logs/compare_likelihood/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "dnadiff evaluate compare --mdlm {input.mdlm:q} --ar {input.ar:q}"
        " --out {output:q} > {log:q} 2>&1"


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
    log:
        "logs/evaluate_samples/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=config_json("run", "evaluate"),
    shell:
        "dnadiff evaluate samples --config-json {params.cfg:q} --samples {input.samples:q}"
        " --data {input.data:q} --out-json {output.json:q} --out-tsv {output.tsv:q}"
        " --plot-kmer {output.kmer:q} --plot-gc {output.gc:q} > {log:q} 2>&1"


rule evaluate_text_samples:
    input:
        samples="results/{run}/samples.jsonl",
        data="results/{run}/data",
        ar="results/{run}/ar/model.pt",
    output:
        json="results/{run}/text_sample_scores.json",
        tsv=report(
            "results/{run}/text_sample_scores.tsv",
            caption="../report/text_sample_scores.rst",
            category="Generated text",
        ),
    log:
        "logs/evaluate_text_samples/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=config_json("run", "evaluate"),
    shell:
        "dnadiff evaluate text-samples --config-json {params.cfg:q} --threads {threads}"
        " --samples {input.samples:q} --data {input.data:q} --ar-checkpoint {input.ar:q}"
        " --out-json {output.json:q} --out-tsv {output.tsv:q} > {log:q} 2>&1"


rule score_samples:
    input:
        samples="results/{run}/samples.fa",
        data="results/{run}/data",
        embedder=embedder,
        annotation=GENOME_GFF,
    output:
        json="results/{run}/sample_scores.json",
        tsv=report(
            "results/{run}/sample_scores.tsv",
            caption="../report/sample_scores.rst",
            category="Generated sequences",
        ),
        plot=report(
            "results/{run}/sample_scores.png",
            caption="../report/sample_scores_plot.rst",
            category="Generated sequences",
        ),
    log:
        "logs/score_samples/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        cfg=config_json("run", "evaluate"),
        embedder=lambda wc, input: (
            f"--embedder {input.embedder[0]}" if input.embedder else ""
        ),
    shell:
        "dnadiff evaluate scores --config-json {params.cfg:q} --threads {threads}"
        " --samples {input.samples:q} --data {input.data:q} {params.embedder}"
        " --annotation {input.annotation:q}"
        " --out-json {output.json:q} --out-tsv {output.tsv:q} --plot {output.plot:q}"
        " > {log:q} 2>&1"


rule evaluate_variants:
    input:
        unpack(trap_inputs),
        checkpoint="results/{run}/mdlm/model.pt",
        data="results/{run}/data",
        annotation=GENOME_GFF,
    output:
        json="results/{run}/variants/snv_classes.json",
        tsv="results/{run}/variants/snv_classes.tsv",
        auroc=report(
            "results/{run}/variants/snv_classes_auroc.tsv",
            caption="../report/snv_classes.rst",
            category="Variant effects",
        ),
    log:
        "logs/evaluate_variants/{run}.log",
    benchmark:
        "benchmarks/evaluate_variants/{run}.tsv"
    conda:
        "../envs/dnadiff.yaml"
    # one thread: most of the time is numpy (the Markov chains); a second torch thread on a
    # busy 2-core machine doubled the time (yeast, 100 per class: 18 s with one, 42 s with two)
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=variants_config(),
        ar=ar_option,
    shell:
        "dnadiff evaluate variants --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input.checkpoint:q} {params.ar} --data {input.data:q}"
        " --annotation {input.annotation:q} --split test --out-json {output.json:q}"
        " --out-tsv {output.tsv:q} --out-auroc {output.auroc:q} > {log:q} 2>&1"
