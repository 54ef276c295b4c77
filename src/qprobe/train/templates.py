"""Chat-template support for assistant-only SFT loss.

TRL masks the loss to assistant turns through ``{% generation %}`` markers in
the chat template; it ships patched copies only for templates it knows.
:func:`with_generation_markers` adds the markers to the Qwen-VL tool template
qprobe uses (and to any template whose assistant branch has the same shape),
so the end-of-turn token is trained too and the model learns to stop.
"""

from __future__ import annotations

import re

from qprobe.errors import ConfigError

_ASSISTANT = re.compile(
    r"(message\.role\s*==\s*[\"']assistant[\"']\s*%\}\s*"
    r"\{\{-?\s*'<\|im_start\|>'\s*\+\s*message\.role\s*\+\s*'\\n'\s*-?\}\})"
    r"(.*?)"
    r"(\{\{-?\s*'<\|im_end\|>\\n'\s*-?\}\})"
    r"(\s*\{%-?\s*elif\s+message\.role\s*==\s*[\"']tool[\"'])",
    re.DOTALL,
)


def with_generation_markers(template: str) -> str:
    """``template`` with its assistant turns (content, tool calls, ``<|im_end|>``) inside generation markers.

    >>> t = "{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role + '\\\\n' }}X{{- '<|im_end|>\\\\n' }}{%- elif message.role == 'tool' %}"
    >>> "{% generation %}X" in with_generation_markers(t)
    True
    """
    if "{% generation %}" in template or "{%- generation %}" in template:
        return template
    patched, n = _ASSISTANT.subn(r"\1{% generation %}\2\3{% endgeneration %}\4", template, count=1)
    if n != 1:
        raise ConfigError(
            "cannot add {% generation %} markers to this chat template (its assistant branch has an unknown "
            "shape): set assistant_only_loss: false, or give the checkpoint a template with the markers"
        )
    return patched
