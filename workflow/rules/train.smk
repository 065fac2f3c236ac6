rule train:
    input:
        data="results/{run}/data",
    output:
        checkpoint="results/{run}/{objective}/model.pt",
        metrics="results/{run}/{objective}/metrics.csv",
        plot=report(
            "results/{run}/{objective}/training_curve.png",
            caption="../report/training_curve.rst",
            category="Training",
            subcategory="{objective}",
        ),
    log:
        "logs/train/{run}.{objective}.log",
    benchmark:
        "benchmarks/train/{run}.{objective}.tsv"
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        cfg=train_config,
        launcher=launcher,
        # Lightning's training state (periodic and SLURM-signal checkpoints, from which an
        # interrupted job resumes) lives outside the declared outputs.
        workdir="results/{run}/{objective}/train_state",
    shell:
        '{params.launcher} "$DNADIFF_PYTHON" -m dnadiff train --config-json {params.cfg:q}'
        " --threads {threads}"
        " --data {input.data:q} --checkpoint {output.checkpoint:q}"
        " --metrics {output.metrics:q} --plot {output.plot:q} --workdir {params.workdir:q}"
        " > {log:q} 2>&1"
