"""Training the VLM prober on TRL: three stages (DESIGN §2.4).

* :mod:`qprobe.train.rewards` — the reward functions (Thurstone ranking,
  accuracy, localization, format), one module each, TRL's reward contract.
* :mod:`qprobe.train.advantages` — decoupled (per-reward) group advantages.
* :mod:`qprobe.train.data` — GRPO / SFT datasets built from manifests.
* :mod:`qprobe.train.stage1` (rank-GRPO), :mod:`qprobe.train.flywheel`
  (teacher trajectories → filtered SFT set), :mod:`qprobe.train.stage2`
  (hybrid-resolution SFT), :mod:`qprobe.train.stage3` (multi-turn GRPO with
  the zoom tool and decoupled rewards).

This package is light to import; torch, transformers and trl load inside the
stage functions.
"""
