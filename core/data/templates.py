"""Chat templates by name: the tokenizer's own, ``chatml``, those TRL ships, or a Jinja file.

``data.chat_template`` chooses one; :func:`resolve_template` turns the choice into template
text (``None`` for the model's own). TRL's templates are read from its installed package
(``trl/chat_templates/*.jinja``) without importing TRL.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from core.data.problems import DataError

MODEL_TEMPLATE = "model"
"""``data.chat_template`` value that keeps the tokenizer's own template."""

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + END + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, used when a tokenizer has no chat template; ``END`` becomes the end-of-turn token."""

CHATML_NAMED = CHATML_TEMPLATE.replace("END", "'<|im_end|>'")
"""ChatML as the named template ``chatml`` (turns end with ``<|im_end|>``)."""


@cache
def _trl_templates() -> dict[str, Path]:
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "chat_templates"
    return {p.stem: p for p in sorted(folder.glob("*.jinja"))}


def template_names() -> list[str]:
    """Names ``data.chat_template`` accepts besides ``model`` and a file path."""
    return ["chatml", *_trl_templates()]


def _looks_like_file(value: str) -> bool:
    return value.endswith((".jinja", ".j2", ".jinja2", ".txt")) or "/" in value or "\\" in value


def template_problem(value: str) -> tuple[str, str] | None:
    """``(message, fix)`` when ``value`` names no template, else ``None`` (for validation)."""
    value = value.strip()
    if value in (MODEL_TEMPLATE, "chatml") or value in _trl_templates():
        return None
    if _looks_like_file(value):
        path = Path(value).expanduser()
        if path.is_file():
            return None
        return (f"{value} does not exist.", "Give a Jinja template file, or a template name "
                "such as chatml, llama3 or qwen2_5, or model.")
    names = ", ".join(template_names()[:12])
    return (f"'{value}' is not a template name.",
            f"Use model (the tokenizer's own), a file ending in .jinja, or one of: {names}…")


def resolve_template(value: str) -> str | None:
    """The template text ``value`` names; ``None`` for ``model`` (the tokenizer's own).

    Raises :class:`DataError` for an unknown name or an unreadable file.
    """
    value = (value or MODEL_TEMPLATE).strip()
    if value == MODEL_TEMPLATE:
        return None
    if value == "chatml":
        return CHATML_NAMED
    trl = _trl_templates()
    if value in trl:
        return trl[value].read_text(encoding="utf-8")
    problem = template_problem(value)
    if problem is not None:
        raise DataError(f"data.chat_template: {problem[0]}", problem[1], value)
    try:
        return Path(value).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"data.chat_template: cannot read {value}: {exc}.",
                        "Give a readable UTF-8 Jinja file.", value) from None
