# Downstream classification benchmarks, scoring of generated sequences against baselines, and
# class-conditional generation. Every rule is one `dnadiff` verb.

rule downstream_task:
    input:
        checkpoint="results/{run}/mdlm/model.pt",
        genome=GENOME_FASTA,
        annotation=GENOME_GFF,
    output:
        json="results/{run}/downstream/{task}.json",
        tsv="results/{run}/downstream/{task}.tsv",
        oracle="results/{run}/downstream/{task}.oracle.pt",
    params:
        cfg=lambda wc: downstream_config(wc.task, "run", "data"),
    log:
        "logs/downstream/{run}.{task}.log",
    benchmark:
        "benchmarks/downstream/{run}.{task}.tsv"
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "dnadiff downstream run --config-json {params.cfg:q} --threads {threads}"
        " --task {wildcards.task:q} --checkpoint {input.checkpoint:q}"
        " --genome {input.genome:q} --annotation {input.annotation:q}"
        " --out-json {output.json:q} --out-tsv {output.tsv:q} --oracle {output.oracle:q}"
        " > {log:q} 2>&1"


rule downstream_table:
    input:
        lambda wc: expand("results/{run}/downstream/{task}.json", run=wc.run,
                          task=downstream_tasks()),
    output:
        tsv=report(
            "results/{run}/downstream.tsv",
            caption="../report/downstream_table.rst",
            category="Downstream classification",
        ),
        plot=report(
            "results/{run}/downstream.png",
            caption="../report/downstream.rst",
            category="Downstream classification",
        ),
    log:
        "logs/downstream_table/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "dnadiff downstream table --inputs {input:q} --out-tsv {output.tsv:q}"
        " --plot {output.plot:q} > {log:q} 2>&1"


rule score_samples:
    input:
        samples="results/{run}/samples.fa",
        data="results/{run}/data",
        embedder=embedder,
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
    params:
        cfg=config_json("run", "evaluate"),
        embedder=lambda wc, input: f"--embedder {input.embedder[0]}" if input.embedder else "",
    log:
        "logs/score_samples/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "dnadiff evaluate scores --config-json {params.cfg:q} --threads {threads}"
        " --samples {input.samples:q} --data {input.data:q} {params.embedder}"
        " --out-json {output.json:q} --out-tsv {output.tsv:q} --plot {output.plot:q}"
        " > {log:q} 2>&1"


rule conditional_train:
    input:
        checkpoint="results/{run}/mdlm/model.pt",
        genome=GENOME_FASTA,
        annotation=GENOME_GFF,
    output:
        checkpoint="results/{run}/conditional/model.pt",
        metrics="results/{run}/conditional/metrics.csv",
    params:
        cfg=downstream_config(config["conditional"]["task"], "run", "data", "conditional",
                              full=False),
        workdir="results/{run}/conditional/train_state",
    log:
        "logs/conditional_train/{run}.log",
    benchmark:
        "benchmarks/conditional_train/{run}.tsv"
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "dnadiff conditional train --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input.checkpoint:q} --genome {input.genome:q}"
        " --annotation {input.annotation:q} --out {output.checkpoint:q}"
        " --metrics {output.metrics:q} --workdir {params.workdir:q} > {log:q} 2>&1"


rule conditional_sample:
    input:
        "results/{run}/conditional/model.pt",
    output:
        "results/{run}/conditional/samples.fa",
    params:
        cfg=downstream_config(config["conditional"]["task"], "run", "conditional", full=False,
                              sample={"seed": config["sample"]["seed"]}),
    log:
        "logs/conditional_sample/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "dnadiff conditional sample --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input:q} --out {output:q} > {log:q} 2>&1"


rule conditional_score:
    input:
        samples="results/{run}/conditional/samples.fa",
        oracle=lambda wc: f"results/{wc.run}/downstream/{config['conditional']['task']}.oracle.pt",
        genome=GENOME_FASTA,
        annotation=GENOME_GFF,
    output:
        tsv=report(
            "results/{run}/conditional/oracle_agreement.tsv",
            caption="../report/oracle_agreement_table.rst",
            category="Conditional generation",
        ),
        plot=report(
            "results/{run}/conditional/oracle_agreement.png",
            caption="../report/oracle_agreement.rst",
            category="Conditional generation",
        ),
    params:
        cfg=downstream_config(config["conditional"]["task"], "run", "data", "conditional",
                              full=False),
    log:
        "logs/conditional_score/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "dnadiff conditional score --config-json {params.cfg:q} --threads {threads}"
        " --samples {input.samples:q} --oracle {input.oracle:q} --genome {input.genome:q}"
        " --annotation {input.annotation:q} --out-tsv {output.tsv:q} --plot {output.plot:q}"
        " > {log:q} 2>&1"
