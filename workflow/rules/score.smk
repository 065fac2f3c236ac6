# Zero-shot variant effects of the run's MDLM on the VCF that the config names (score.vcf):
# requested by `rule all` only when it is set.


rule score_vcf:
    input:
        checkpoint="results/{run}/mdlm/model.pt",
        vcf=lambda wildcards: config["score"]["vcf"],
        reference=GENOME_FASTA,
    output:
        report(
            "results/{run}/score/variants.tsv",
            caption="../report/score_variants.rst",
            category="Variant effects",
        ),
    log:
        "logs/score_vcf/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        cfg=config_json("run", "score"),
    shell:
        "dnadiff score variants --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input.checkpoint:q} --vcf {input.vcf:q}"
        " --reference {input.reference:q} --out {output:q} > {log:q} 2>&1"
