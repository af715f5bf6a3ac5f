"""The Ollama ``Modelfile`` beside a GGUF: FROM, TEMPLATE, SYSTEM and the stop tokens.

Ollama renders prompts with Go templates, not Jinja; :func:`go_template` writes the same text
as the model's chat template from its parts (:class:`core.export.chat.ChatFormat`), in the
shape Ollama's own ChatML templates use: the system prompt from ``.System``, then each user
and assistant message, and the opening of the answer after the last user message.
"""

from __future__ import annotations

import re
import shlex

from core.export.chat import ChatFormat

MODELFILE = "Modelfile"


def _literal(text: str) -> str:
    """``text`` as literal Go template text (``{{`` would open an action)."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(fmt: ChatFormat) -> str:
    """The Ollama TEMPLATE that renders what ``fmt`` renders."""
    lit = _literal
    system = (f"{{{{ if .System }}}}{lit(fmt.system_prefix)}{{{{ .System }}}}{lit(fmt.system_suffix)}"
              f"{{{{ else }}}}{lit(fmt.start)}{{{{ end }}}}")
    return (
        system
        + "{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
        + f'{{{{ if eq .Role "user" }}}}{lit(fmt.user_prefix)}{{{{ .Content }}}}{lit(fmt.user_suffix)}'
        + f"{{{{ if $last }}}}{lit(fmt.generation)}{{{{ end }}}}"
        + f'{{{{ else if eq .Role "assistant" }}}}{lit(fmt.assistant_prefix)}{{{{ .Content }}}}'
        + f"{{{{ if not $last }}}}{lit(fmt.assistant_suffix)}{{{{ end }}}}"
        + "{{ end }}{{ end }}"
    )


def _quoted(text: str) -> str:
    if '"""' in text:
        raise ValueError('text holds """, which a Modelfile cannot quote')
    return f'"""{text}"""'


def modelfile(gguf_name: str, fmt: ChatFormat | None, stops: list[str]) -> str:
    """The Modelfile text: the GGUF beside it, the template, default system prompt and stops.

    Without ``fmt`` (a template that is more than text around messages) the TEMPLATE is left
    out and Ollama falls back on the chat template inside the GGUF.
    """
    lines = [f"FROM ./{gguf_name}"]
    if fmt is not None:
        lines.append(f"TEMPLATE {_quoted(go_template(fmt))}")
        if fmt.default_system:
            lines.append(f"SYSTEM {_quoted(fmt.default_system)}")
    lines += [f'PARAMETER stop "{stop}"' for stop in stops if '"' not in stop]
    return "\n".join(lines) + "\n"


def ollama_name(run_name: str) -> str:
    """A model name Ollama accepts, from the run's name."""
    name = re.sub(r"[^a-z0-9._-]+", "-", run_name.lower()).strip("-._")
    return name or "tunetop-model"


def ollama_commands(out_dir: str, name: str) -> list[str]:
    """The two commands that load the export into Ollama and chat with it."""
    return [f"ollama create {name} -f {shlex.quote(f'{out_dir}/{MODELFILE}')}", f"ollama run {name}"]
