"""Shared code of the multimodal-LLM backends (``transformers`` and ``openai``).

* :mod:`.families` — what differs between model families (box convention,
  classes, patch size), looked up from a checkpoint's ``model_type``;
* :mod:`.coords` — box conventions, converted at the backend boundary;
* :mod:`.processor` — image-only processors that work without torchvision;
* :mod:`.messages` — chat messages built from a probing history;
* :mod:`.policy` — the LLM policy that drives :func:`qprobe.agent.loop.run_episode`;
* :mod:`.engine` — the text-generation interface both backends implement.

Only :mod:`.processor` and the engines import torch/transformers.
"""
