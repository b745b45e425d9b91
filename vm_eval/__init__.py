"""vm_eval: the paper's six metrics, its benchmarks, and a runner that makes its tables for any method.

Modules: ``metrics`` (the registry), ``clip`` / ``dino`` / ``face`` / ``flow`` (one per metric family),
``encoders`` (load each model once), ``scorer`` (one video -> one result per metric), ``bench_defs`` (benchmarks
as data), ``runner`` (generate + score, resumable, shardable), ``store`` (samples.jsonl and its per-process
shards), ``score_manifest`` (the videos ``vm bench score`` reads), ``results`` (one metric's answer),
``aggregate`` / ``tables`` / ``html_report`` (all aggregation, rebuilt from JSONL), ``bench`` (the ``vm bench``
command).
"""

__all__: list[str] = []
