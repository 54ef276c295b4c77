"""Evaluation harness: datasets, metrics, baselines, runner, reports and analyses (DESIGN §2.5).

Light at import time; submodules load what they need::

    from qprobe.eval.datasets import load_dataset
    from qprobe.eval.runner import evaluate
    rows = load_dataset("clive", "../shared/data/clive")
    result = evaluate(["niqe", "brisque", "piqe"], rows, out_dir="runs/clive", workers=2)
"""
