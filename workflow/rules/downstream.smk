# Downstream classification benchmarks of the pretrained model. Every rule is one `dnadiff`
# verb.


rule downstream_task:
    input:
        checkpoint="results/{run}/mdlm/model.pt",
        genome=GENOME_FASTA,
        annotation=GENOME_GFF,
    output:
        json="results/{run}/downstream/{task}.json",
        tsv="results/{run}/downstream/{task}.tsv",
        oracle="results/{run}/downstream/{task}.oracle.pt",
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
    params:
        cfg=lambda wc: downstream_config(wc.task, "run", "data"),
    shell:
        "dnadiff downstream run --config-json {params.cfg:q} --threads {threads}"
        " --task {wildcards.task:q} --checkpoint {input.checkpoint:q}"
        " --genome {input.genome:q} --annotation {input.annotation:q}"
        " --out-json {output.json:q} --out-tsv {output.tsv:q} --oracle {output.oracle:q}"
        " > {log:q} 2>&1"


rule downstream_table:
    input:
        lambda wc: expand(
            "results/{run}/downstream/{task}.json", run=wc.run, task=downstream_tasks()
        ),
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
        comparison=report(
            "results/{run}/downstream_published.md",
            caption="../report/downstream_published.rst",
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
        " --plot {output.plot:q} --comparison {output.comparison:q} > {log:q} 2>&1"
