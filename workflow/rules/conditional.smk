# Class-conditional generation on a downstream task, scored by that task's oracle
# classifier. Every rule is one `dnadiff` verb.


rule conditional_train:
    input:
        checkpoint="results/{run}/mdlm/model.pt",
        genome=GENOME_FASTA,
        annotation=GENOME_GFF,
    output:
        checkpoint="results/{run}/conditional/model.pt",
        metrics="results/{run}/conditional/metrics.csv",
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
    params:
        cfg=downstream_config(
            config["conditional"]["task"], "run", "data", "conditional", full=False
        ),
        workdir="results/{run}/conditional/train_state",
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
    log:
        "logs/conditional_sample/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        cfg=downstream_config(
            config["conditional"]["task"],
            "run",
            "conditional",
            full=False,
            sample={"seed": config["sample"]["seed"]},
        ),
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
    log:
        "logs/conditional_score/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=downstream_config(
            config["conditional"]["task"], "run", "data", "conditional", full=False
        ),
    shell:
        "dnadiff conditional score --config-json {params.cfg:q} --threads {threads}"
        " --samples {input.samples:q} --oracle {input.oracle:q} --genome {input.genome:q}"
        " --annotation {input.annotation:q} --out-tsv {output.tsv:q} --plot {output.plot:q}"
        " > {log:q} 2>&1"
