# video-emotion: raw face videos -> frames -> aligned faces -> HDF5 clip cache -> 3Res-att and baselines ->
# Parquet predictions -> metrics -> report. `snakemake --cores all` runs it on the embedded demo.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/faces.smk"
include: "workflow/rules/cache.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/predict.smk"


rule all:
    default_target: True
    input:
        final_outputs,


onsuccess:
    print_summary()


# A failed job leaves the final tables absent, so that a plain rerun goes back to the failure (and its message)
# instead of answering "Nothing to be done" with results that no longer match their inputs.
onerror:
    invalidate_final_outputs()
