"""Training of the classic backend (``qprobe train classic``).

Modules: ``clive`` (CLIVE rows and cached stem features), ``regressor``
(fine-tune the quality trunk, k-fold cross-validation), ``detector`` (scan
model and dense defect head on benchmark builds), ``fusion_fit`` (score
fusion weights), ``run`` (the staged recipe, writing the shipped weights).
Torch is imported by these modules: they are only loaded by the command.
"""
