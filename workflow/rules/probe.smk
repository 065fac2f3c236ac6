# The analyses of "The Role of Discreteness in Diffusion LLMs" (Jin et al.), for DNA and text
# models alike: the masked-position probe (positional collapse) and the marginal trap.


rule probe_collapse:
    input:
        unpack(lambda wc: probe_prompts()),
        checkpoint="results/{run}/mdlm/model.pt",
        data="results/{run}/data",
    output:
        tsv="results/{run}/probe/collapse.tsv",
        json="results/{run}/probe/collapse.json",
        curves=report(
            "results/{run}/probe/collapse_curves.tsv",
            caption="../report/collapse_curves.rst",
            category="Discreteness probes",
        ),
        plot=report(
            "results/{run}/probe/collapse.png",
            caption="../report/collapse.rst",
            category="Discreteness probes",
        ),
    log:
        "logs/probe_collapse/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=config_json(
            "run",
            "data",
            "probe",
            evaluate={"batch_size": config["evaluate"]["batch_size"]},
        ),
    shell:
        "dnadiff probe collapse --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input.checkpoint:q} --data {input.data:q}"
        " --out-tsv {output.tsv:q} --out-curves {output.curves:q} --out-json {output.json:q}"
        " --plot {output.plot:q} > {log:q} 2>&1"


rule marginal_trap:
    input:
        unpack(trap_inputs),
        checkpoint="results/{run}/mdlm/model.pt",
        data="results/{run}/data",
    output:
        json="results/{run}/probe/marginal_trap.json",
        tsv=report(
            "results/{run}/probe/marginal_trap.tsv",
            caption="../report/marginal_trap_table.rst",
            category="Discreteness probes",
        ),
        plot=report(
            "results/{run}/probe/marginal_trap.png",
            caption="../report/marginal_trap.rst",
            category="Discreteness probes",
        ),
    log:
        "logs/marginal_trap/{run}.log",
    benchmark:
        "benchmarks/marginal_trap/{run}.tsv"
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        cfg=config_json("run", "data", "marginal_trap", "evaluate", "sample"),
        ar=lambda wc, input: (
            f"--ar-checkpoint {input.ar}" if "ar" in input.keys() else ""
        ),
    shell:
        "dnadiff probe trap --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input.checkpoint:q} --data {input.data:q} {params.ar}"
        " --out-tsv {output.tsv:q} --out-json {output.json:q} --plot {output.plot:q}"
        " > {log:q} 2>&1"


rule probe_influence:
    input:
        checkpoint="results/{run}/mdlm/model.pt",
        data="results/{run}/data",
    output:
        json="results/{run}/probe/influence.json",
        tsv=report(
            "results/{run}/probe/influence.tsv",
            caption="../report/influence.rst",
            category="Discreteness probes",
        ),
    log:
        "logs/probe_influence/{run}.log",
    conda:
        "../envs/dnadiff.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=config_json(
            "run",
            "data",
            "influence",
            evaluate={"batch_size": config["evaluate"]["batch_size"]},
        ),
    shell:
        "dnadiff probe influence --config-json {params.cfg:q} --threads {threads}"
        " --checkpoint {input.checkpoint:q} --data {input.data:q}"
        " --out-tsv {output.tsv:q} --out-json {output.json:q} > {log:q} 2>&1"
