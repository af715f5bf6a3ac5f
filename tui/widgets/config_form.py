"""A keyboard-first form over every field of ``RunConfig``, grouped, with help and defaults.

Each field shows its dotted name, its default, a one-line help text (the field's docstring in
``core/config.py``), and a marker when it differs from the default. Edits are parsed as they are
typed and reported with :class:`ConfigForm.Edited`; the screen validates and sends errors back
with :meth:`ConfigForm.show_errors`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Select, Static, Switch

from core import config as config_mod
from core.config import RunConfig

CHOICES: dict[str, tuple[str, ...]] = {
    "method": config_mod.METHODS,
    "optim.precision": config_mod.PRECISIONS,
    "optim.lr_scheduler_type": config_mod.SCHEDULERS,
    "data.format": config_mod.DATA_FORMATS,
    "data.on_bad_rows": ("drop", "stop"),
    "distributed_strategy": ("ddp", "fsdp"),
    "model.attn_implementation": ("sdpa", "eager", "flash_attention_2"),
}
"""Fields edited with a drop-down, and their values."""

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Model", ("model.name_or_path", "model.revision", "model.attn_implementation",
               "model.trust_remote_code", "model.allow_pickle_weights")),
    ("Method", ("method", "optim.precision", "num_processes", "distributed_strategy", "run_name",
                "output_dir")),
    ("LoRA", ("lora.r", "lora.lora_alpha", "lora.lora_dropout", "lora.target_modules")),
    ("Optimisation", ("optim.learning_rate", "optim.per_device_train_batch_size",
                      "optim.gradient_accumulation_steps", "optim.gradient_checkpointing",
                      "optim.weight_decay", "optim.max_grad_norm", "optim.seed",
                      "optim.retry_on_oom")),
    ("Schedule", ("optim.num_train_epochs", "optim.max_steps", "optim.lr_scheduler_type",
                  "optim.warmup_ratio")),
    ("Data", ("data.path", "data.dataset", "data.split", "data.revision", "data.sources",
              "data.format", "data.chat_template", "data.default_system_prompt",
              "data.max_length", "data.text_chunking", "data.validation_fraction",
              "data.assistant_only_loss", "data.on_bad_rows", "optim.padding_free",
              "optim.group_by_length", "data.replay")),
    ("Evaluation & checkpoints", ("eval.eval_steps", "eval.save_steps", "eval.logging_steps",
                                  "eval.per_device_eval_batch_size",
                                  "eval.early_stopping_patience", "eval.keep_best",
                                  "eval.save_total_limit", "report_to", "eval.general_prompts",
                                  "eval.general_sample", "eval.general_max_new_tokens",
                                  "eval.drift_threshold")),
)
"""Form sections in screen order; together they hold every field of ``RunConfig`` once."""


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string after each field), by field name."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split()).replace("``", "")
    return docs


@dataclass(frozen=True)
class FieldSpec:
    """One editable field: where it lives in ``RunConfig``, how to edit it, its help."""

    path: str
    """Dotted name, e.g. ``optim.learning_rate``."""
    kind: str
    """``int``, ``float``, ``str``, ``optional``, ``bool``, ``choice``, ``list`` or
    ``summary`` (a list of sections, shown read-only: edited in the YAML)."""
    default: Any
    help: str

    @property
    def widget_id(self) -> str:
        """DOM id of the field's control: the dotted name with dashes."""
        return "field-" + self.path.replace(".", "-").replace("_", "-")


def _kind(path: str, hint: Any) -> str:
    if path in CHOICES:
        return "choice"
    origin = typing.get_origin(hint)
    if origin is list:
        args = typing.get_args(hint)
        return "summary" if args and dataclasses.is_dataclass(args[0]) else "list"
    if origin is not None and type(None) in typing.get_args(hint):
        return "optional"
    return {bool: "bool", int: "int", float: "float"}.get(hint, "str")


def build_specs() -> dict[str, FieldSpec]:
    """A spec for every leaf field of ``RunConfig``, keyed by dotted name."""
    specs: dict[str, FieldSpec] = {}

    def walk(cls: type, instance: Any, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            path = prefix + f.name
            value = getattr(instance, f.name)
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], value, path + ".")
                continue
            specs[path] = FieldSpec(path, _kind(path, hints[f.name]), value, docs.get(f.name, ""))

    walk(RunConfig, RunConfig(), "")
    return specs


SPECS = build_specs()
"""Every field of ``RunConfig``."""


def get_value(config: RunConfig, path: str) -> Any:
    """The value at a dotted path of ``config``."""
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def set_value(config: RunConfig, path: str, value: Any) -> None:
    """Set the value at a dotted path of ``config``."""
    *sections, name = path.split(".")
    target: Any = config
    for part in sections:
        target = getattr(target, part)
    setattr(target, name, value)


def format_value(spec: FieldSpec, value: Any) -> str:
    """The text an ``Input`` shows for ``value``."""
    if value is None:
        return ""
    if spec.kind == "summary":  # data.sources: one "path (weight)" per item
        return "; ".join(str(getattr(item, "path", item)) + (
            f" (weight {item.weight:g})" if getattr(item, "weight", None) is not None else "")
            for item in value) or "none"
    if spec.kind == "list":
        return ", ".join(value)
    if spec.kind == "float":
        return f"{value:g}"
    return str(value)


def parse_value(spec: FieldSpec, text: str) -> Any:
    """Parse what was typed; raises ``ValueError`` with a message that says what to type."""
    text = text.strip()
    if spec.kind == "int":
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError("is not a whole number.")
        return int(text)
    if spec.kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError("is not a number (e.g. 0.05 or 2e-4).") from None
    if spec.kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    if spec.kind == "optional":
        return text or None
    return text


class ConfigField(Vertical):
    """One field: name and default, the control, help, and the error when there is one."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(classes="config-field")
        self.spec = spec

    def compose(self) -> ComposeResult:
        spec = self.spec
        default = format_value(spec, spec.default) if spec.default is not None else "none"
        yield Static(f"{spec.path}  [dim](default {default or 'empty'})[/]", classes="field-label",
                     markup=True)
        if spec.kind == "bool":
            yield Switch(value=bool(spec.default), id=spec.widget_id)
        elif spec.kind == "choice":
            yield Select([(c, c) for c in CHOICES[spec.path]], value=spec.default,
                         allow_blank=False, id=spec.widget_id, compact=True)
        elif spec.kind == "summary":  # read-only: a list of sections is edited in the YAML
            yield Static(format_value(spec, spec.default), id=spec.widget_id, markup=False)
        else:
            yield Input(format_value(spec, spec.default), id=spec.widget_id, compact=True,
                        placeholder="empty = none" if spec.kind == "optional" else "")
        yield Static(spec.help, classes="field-help", markup=False)
        yield Static("", classes="field-error", markup=False)

    @property
    def control(self) -> Input | Select | Switch | Static:
        """The editing widget (a ``Static`` for a read-only summary)."""
        return self.query_one(f"#{self.spec.widget_id}")  # type: ignore[return-value]

    def show(self, value: Any) -> None:
        """Show ``value`` in the control (without reporting it as an edit)."""
        control = self.control
        if isinstance(control, Static):
            control.update(format_value(self.spec, value))
            self.mark_modified(value)
            return
        with control.prevent(Input.Changed, Select.Changed, Switch.Changed):
            if isinstance(control, Switch):
                control.value = bool(value)
            elif isinstance(control, Select):
                control.value = value
            else:
                control.value = format_value(self.spec, value)
        self.mark_modified(value)

    def mark_modified(self, value: Any) -> None:
        """Mark the field when ``value`` differs from the default."""
        modified = value != self.spec.default
        self.set_class(modified, "-modified")
        label = self.query_one(".field-label", Static)
        default = format_value(self.spec, self.spec.default) or "empty"
        marker = "[b $warning]● [/]" if modified else ""
        label.update(f"{marker}{self.spec.path}  [dim](default {default})[/]")

    def show_error(self, message: str | None) -> None:
        """Show ``message`` under the field, or clear it."""
        self.set_class(bool(message), "-invalid")
        self.query_one(".field-error", Static).update(f"✗ {message}" if message else "")


class ConfigForm(VerticalScroll, can_focus=False):
    """Every ``RunConfig`` field in titled groups, scrolling so it works at 80x24."""

    class Edited(Message):
        """A field was changed: ``value`` parsed, or ``error`` when it could not be."""

        def __init__(self, path: str, value: Any, error: str | None) -> None:
            super().__init__()
            self.path = path
            self.value = value
            self.error = error

    def compose(self) -> ComposeResult:
        for title, paths in GROUPS:
            yield Static(title, classes="group-title")
            for path in paths:
                yield ConfigField(SPECS[path])

    def field(self, path: str) -> ConfigField:
        """The field widget for a dotted path."""
        return self.query_one(f"#{SPECS[path].widget_id}").parent  # type: ignore[return-value]

    def load(self, config: RunConfig) -> None:
        """Show every value of ``config``."""
        for field in self.query(ConfigField):
            field.show(get_value(config, field.spec.path))

    def show_errors(self, errors: dict[str, str]) -> None:
        """Show ``errors`` (dotted path -> message) and clear every other field's."""
        for field in self.query(ConfigField):
            path = field.spec.path
            # a read-only list shows its items' errors too (data.sources[1].weight)
            found = [f"{key.removeprefix(path)}: {text}" if key != path else text
                     for key, text in errors.items()
                     if key == path or (field.spec.kind == "summary" and key.startswith(path + "["))]
            field.show_error(" ".join(found) or None)

    def _edited(self, control: Input | Select | Switch, raw: Any) -> None:
        field = control.parent
        if not isinstance(field, ConfigField):
            return
        spec = field.spec
        if isinstance(raw, str) and spec.kind not in ("choice",):
            try:
                value, error = parse_value(spec, raw), None
            except ValueError as exc:
                value, error = None, f"'{raw.strip()}' {exc}"
        else:
            value, error = raw, None
        if error is None:
            field.mark_modified(value)
        self.post_message(self.Edited(spec.path, value, error))

    @on(Input.Changed)
    def input_changed(self, event: Input.Changed) -> None:
        """Parse typed text as it changes."""
        event.stop()
        self._edited(event.input, event.value)

    @on(Select.Changed)
    def select_changed(self, event: Select.Changed) -> None:
        """A drop-down choice."""
        event.stop()
        self._edited(event.select, event.value)

    @on(Switch.Changed)
    def switch_changed(self, event: Switch.Changed) -> None:
        """A switch flipped."""
        event.stop()
        self._edited(event.switch, event.value)
