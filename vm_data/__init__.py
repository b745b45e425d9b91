"""vm_data: subject-highlight preprocessing of video datasets, filters, augmentation, the training dataset.

Modules (one job each): ``clip_manifest`` (the training-data manifest: the row schema vm_model reads),
``sources`` (input layouts), ``video`` (decode only the sampled frames), ``detect`` / ``segment`` (Grounding DINO /
SAM behind small interfaces), ``tiny`` (tiny random models for the tiny preset), ``filters`` (keep/reject with
reason and score), ``reference`` (white-background crops), ``highlight`` (the single-image API used at inference),
``clip_processing`` (per-clip work: decode, highlight, decide), ``preprocess`` (the `vm preprocess-dataset`
command), ``augment`` and ``dataset`` (training), ``synthetic`` (synthetic clips), ``registry`` (pretrained
weights), ``testing`` (test-only backends). See docs/data.md.
"""
