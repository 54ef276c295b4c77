"""Training of the classic backend (``qprobe train classic``).

Stages, each one module: ``clive`` (CLIVE rows and cached stem features),
``regressor`` (fine-tune the quality trunk, k-fold cross-validation),
``detector`` (dense defect head on benchmark patches), ``fusion`` (score
fusion weights), ``run`` (the whole recipe, writing the shipped weights).
Torch is imported by these modules: they are only loaded by the command.
"""
