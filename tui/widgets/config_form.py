"""A keyboard-first list of every field of ``RunConfig``, grouped, edited in place.

Each field shows its dotted name (marked when it differs from the default) and its value; the
highlighted one also shows its help (the field's docstring in ``core/config.py``) and default.
Edits are parsed as they are typed and reported with :class:`ConfigForm.Edited`; the screen
validates and sends errors back with :meth:`ConfigForm.show_errors`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass
from functools import partial
from typing import Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, OptionList, Select, Static

from core import config as config_mod
from core.config import RunConfig
from tui.widgets.path_suggester import PathSuggester

CHOICES: dict[str, tuple[str, ...]] = {
    "method": config_mod.METHODS,
    "objective": config_mod.OBJECTIVES,
    "preference.loss_type": config_mod.DPO_LOSS_TYPES,
    "optim.precision": config_mod.PRECISIONS,
    "optim.lr_scheduler_type": config_mod.SCHEDULERS,
    "data.format": config_mod.DATA_FORMATS,
    "data.on_bad_rows": ("drop", "stop"),
    "distributed_strategy": ("ddp", "fsdp"),
    "model.attn_implementation": ("sdpa", "eager", "flash_attention_2"),
}
"""Fields edited with a drop-down, and their values."""

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Model", ("model.name_or_path", "model.adapter", "model.revision",
               "model.attn_implementation", "model.trust_remote_code",
               "model.allow_pickle_weights")),
    ("Method", ("method", "objective", "optim.precision", "num_processes",
                "distributed_strategy", "run_name", "output_dir")),
    ("LoRA", ("lora.r", "lora.lora_alpha", "lora.lora_dropout", "lora.target_modules")),
    ("Preference (DPO/ORPO)", ("preference.beta", "preference.loss_type")),
    ("Optimisation", ("optim.learning_rate", "optim.per_device_train_batch_size",
                      "optim.gradient_accumulation_steps", "optim.gradient_checkpointing",
                      "optim.weight_decay", "optim.max_grad_norm", "optim.seed",
                      "optim.retry_on_oom")),
    ("Schedule", ("optim.num_train_epochs", "optim.max_steps", "optim.time_budget",
                  "optim.lr_scheduler_type", "optim.warmup_ratio")),
    ("Data", ("data.path", "data.dataset", "data.split", "data.revision", "data.sources",
              "data.format", "data.chat_template", "data.default_system_prompt",
              "data.max_length", "data.text_chunking", "data.validation_fraction",
              "data.assistant_only_loss", "data.on_bad_rows", "optim.padding_free",
              "optim.group_by_length", "data.replay")),
    ("Evaluation & checkpoints", ("eval.eval_steps", "eval.save_steps", "eval.logging_steps",
                                  "eval.per_device_eval_batch_size", "eval.max_rows",
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


PATH_FIELDS: dict[str, tuple[str, ...]] = {
    "data.path": (".jsonl", ".json", ".csv", ".parquet", ".arrow"),
    "output_dir": (),
    "model.name_or_path": (),
    "model.adapter": (),
}
"""Fields typed as paths, completed from the file system (with the file endings offered)."""


class FieldFinder(Provider):
    """The Config form's field search: by the words of a name (``grad acc`` finds
    ``optim.gradient_accumulation_steps``), then by words of the help (``rank`` finds
    ``lora.r``, "Adapter rank..."), then by scattered letters of the name."""

    def _form(self) -> ConfigForm:
        return self.screen.query_one(ConfigForm)

    async def discover(self) -> Hits:
        """Every field, in form order."""
        form = self._form()
        for field in form.fields:
            spec = field.spec
            yield DiscoveryHit(spec.path, partial(form.highlight, spec.path), help=spec.help)

    async def search(self, query: str) -> Hits:
        """Fields matching ``query``, best first."""
        form = self._form()
        matcher = self.matcher(spaced(query))
        for field in form.fields:
            spec = field.spec
            score = field_score(query, spec)
            if not score:
                # Scattered letters of the name ("lr" in "lr_scheduler"): ranked below words.
                score = matcher.match(spaced(spec.path)) / 100
            if score > 0:
                yield Hit(score, matcher.highlight(spec.path), partial(form.highlight, spec.path),
                          help=spec.help)


def spaced(text: str) -> str:
    """A dotted name's words: ``lora.lora_alpha`` -> ``lora lora alpha``."""
    return re.sub(r"[._]", " ", text.lower())


def field_score(query: str, spec: FieldSpec) -> float:
    """How well every word of ``query`` names the field: 3 per word starting a word of its
    name, 1 per word found in its help; 0 when a word is in neither."""
    name_words = spaced(spec.path).split()
    help_text = spec.help.lower()
    score = 0.0
    for word in spaced(query).split():
        if any(name_word.startswith(word) for name_word in name_words):
            score += 3
        elif word in help_text:
            score += 1
        else:
            return 0.0
    return score


class BoolValue(Static):
    """A yes/no field's value in words (``● On`` / ``○ Off``); the form flips it."""

    value: reactive[bool] = reactive(False)
    """The value shown."""

    def render(self) -> str:
        """``● On`` or ``○ Off``."""
        return "● On" if self.value else "○ Off"

    def watch_value(self, value: bool) -> None:
        """Colour by value (``-on``)."""
        self.set_class(value, "-on")


class ConfigField(Vertical):
    """One field: its name, its value (the editor), help while highlighted, and its error."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(classes="config-field")
        self.spec = spec
        self.opened = False
        """Set once the user opened this field's editor; only then are its controls' change
        messages edits (an input or drop-down also reports its first value when mounted)."""

    def compose(self) -> ComposeResult:
        """Name, value, help (with the default), error."""
        spec = self.spec
        yield Static(spec.path, classes="field-name", markup=False)
        if spec.kind == "bool":
            yield BoolValue(id=spec.widget_id, classes="field-value")
        elif spec.kind == "choice":
            select: Select[str] = Select([(c, c) for c in CHOICES[spec.path]], value=spec.default,
                                         allow_blank=False, id=spec.widget_id, compact=True,
                                         classes="field-value")
            select.can_focus = False
            yield select
        elif spec.kind == "summary":  # read-only: a list of sections is edited in the YAML
            yield Static(format_value(spec, spec.default), id=spec.widget_id, markup=False,
                         classes="field-value")
        else:
            suggester = (PathSuggester(samples=spec.path == "data.path",
                                       suffixes=PATH_FIELDS[spec.path])
                         if spec.path in PATH_FIELDS else None)
            field_input = Input(format_value(spec, spec.default), id=spec.widget_id, compact=True,
                                placeholder="empty = none" if spec.kind == "optional" else "",
                                suggester=suggester, classes="field-value")
            field_input.can_focus = False
            yield field_input
        default = format_value(spec, spec.default) if spec.default is not None else "none"
        if spec.kind == "bool":
            default = "On" if spec.default else "Off"
        yield Static(f"{spec.help} Default: {default or 'empty'}.", classes="field-help",
                     markup=False)
        yield Static("", classes="field-error", markup=False)

    @property
    def control(self) -> Input | Select | BoolValue | Static:
        """The widget showing (and editing) the value (a ``Static`` for a read-only summary)."""
        return self.query_one(f"#{self.spec.widget_id}")  # type: ignore[return-value]

    @property
    def editable_in_place(self) -> bool:
        """Whether editing focuses a text input here (not a switch or a drop-down)."""
        return self.spec.kind not in ("bool", "choice", "summary")

    def show(self, value: Any) -> None:
        """Show ``value`` in the control (without reporting it as an edit)."""
        control = self.control
        if self.spec.kind == "summary":
            control.update(format_value(self.spec, value))
            self.mark_modified(value)
            return
        with control.prevent(Input.Changed, Select.Changed):
            if isinstance(control, BoolValue):
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
        name = Text("● ", style="bold") if modified else Text("  ")
        name.append(self.spec.path)
        self.query_one(".field-name", Static).update(name)

    def show_error(self, message: str | None) -> None:
        """Show ``message`` under the field, or clear it."""
        self.set_class(bool(message), "-invalid")
        self.query_one(".field-error", Static).update(f"✗ {message}" if message else "")


class ConfigForm(VerticalScroll, can_focus=True, inherit_bindings=False):
    """Every ``RunConfig`` field in titled groups: a list with one highlighted field.

    Nothing is edited until asked: ``Enter`` (or ``e``) edits the highlighted field in place
    (a switch flips, a drop-down opens), ``Enter``/``Esc`` go back to the list, ``Tab`` moves
    on, keeping the editor open for text fields, ``/`` jumps to a field by name.

    The keys that move the focus are priority bindings: Textual runs those as each key
    arrives, before the next key is routed, and the focus moves at once
    (``Screen.set_focus``), so keys that arrive in the same burst (SSH sends them in one
    packet) go to the field focused when they arrive. A plain binding runs only after its key
    went through the focused widget's queue, by which time the keys that followed it were
    already queued there (and ``Widget.focus`` itself waits a turn of the loop).
    """

    # Its own keys only (inherit_bindings=False): a list, not a scroll container's left/right.
    BINDINGS = [
        Binding("enter", "edit", "Edit", priority=True, id="config.edit"),
        Binding("enter", "done", "Done", priority=True, id="config.done"),
        Binding("e,space", "edit", "Edit", show=False, priority=True, id="config.edit-key"),
        Binding("escape", "done", "Done", show=False, priority=True, id="config.leave"),
        Binding("slash", "find", "Find", priority=True, id="config.find"),
        Binding("ctrl+f", "find_anywhere", "Find a field", show=False, priority=True,
                id="config.find-anywhere"),
        Binding("tab", "next_field(1)", "Next", priority=True, id="config.next"),
        Binding("shift+tab", "next_field(-1)", "Previous", show=False, priority=True,
                id="config.previous"),
        Binding("down", "move(1)", "Down", show=False, priority=True, id="config.down"),
        Binding("up", "move(-1)", "Up", show=False, priority=True, id="config.up"),
        Binding("pagedown", "page(1)", "Page down", show=False, priority=True,
                id="config.page-down"),
        Binding("pageup", "page(-1)", "Page up", show=False, priority=True, id="config.page-up"),
        Binding("home", "jump(0)", "First field", show=False, priority=True, id="config.first"),
        Binding("end", "jump(-1)", "Last field", show=False, priority=True, id="config.last"),
    ]
    """``Enter``/``e``/``space`` edit, ``Enter``/``Esc`` leave the editor, ``/`` or ``ctrl+f``
    find a field, ``Tab``/``shift+Tab`` next/previous field, arrows, page keys, home/end."""

    cursor: reactive[int] = reactive(0, init=False)
    """Index of the highlighted field."""

    @dataclass
    class Edited(Message):
        """A field was changed: ``value`` parsed, or ``error`` when it could not be."""

        path: str
        value: Any
        error: str | None

    def compose(self) -> ComposeResult:
        """Group titles and their fields."""
        for title, paths in GROUPS:
            yield Static(title, classes="group-title")
            for path in paths:
                yield ConfigField(SPECS[path])

    def on_mount(self) -> None:
        """Highlight the first field; follow the drop-downs opening and closing."""
        self.fields: list[ConfigField] = list(self.query(ConfigField))
        """The fields in screen order (the cursor indexes this)."""
        for select in self.query(Select):
            self.watch(select, "expanded", self._select_expanded, init=False)
        self._highlight(None, self.fields[0])

    # --- the highlighted field -------------------------------------------------------------

    def field(self, path: str) -> ConfigField:
        """The field widget for a dotted path."""
        return self.query_one(f"#{SPECS[path].widget_id}").parent  # type: ignore[return-value]

    @property
    def current(self) -> ConfigField:
        """The highlighted field."""
        return self.fields[self.cursor]

    @property
    def editing(self) -> ConfigField | None:
        """The field whose editor has the focus, if any."""
        focused = self.screen.focused
        if focused is None or focused is self:
            return None
        for node in focused.ancestors_with_self:
            if isinstance(node, ConfigField):
                return node
            if node is self:
                break
        return None

    def highlight(self, path: str) -> None:
        """Move the highlight to a field (and scroll it into view)."""
        self.cursor = self.fields.index(self.field(path))

    def watch_cursor(self, old: int, new: int) -> None:
        """Move the highlight and keep it in view."""
        self._highlight(self.fields[old] if 0 <= old < len(self.fields) else None,
                        self.fields[new])

    def _highlight(self, old: ConfigField | None, new: ConfigField) -> None:
        if old is not None:
            old.remove_class("-highlight")
        new.add_class("-highlight")
        # The help line appears under the highlighted field: scroll once it is laid out.
        self.call_after_refresh(self.show_current)

    def show_current(self) -> None:
        """Scroll so the highlighted field (and its group's title, when it is the first of its
        group) is in view."""
        field = self.current
        region = field.virtual_region_with_margin
        before = self.children[self.children.index(field) - 1]
        if before.has_class("group-title"):
            region = region.union(before.virtual_region_with_margin)
        self.scroll_to_region(region, animate=False, immediate=True)

    # --- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """List keys while the list has the focus, editor keys while an editor has it; none
        while a drop-down is open (its own keys choose)."""
        editing = self.editing
        if editing is not None and editing.spec.kind == "choice":
            return action in ("next_field", "find_anywhere")
        if action in ("edit", "page", "jump", "find"):
            return editing is None
        if action == "done":
            return editing is not None
        return True

    def action_edit(self) -> None:
        """Edit the highlighted field: a switch flips, a drop-down opens, text gets a cursor."""
        field = self.current
        if field.spec.kind == "summary":
            self.notify(f"{field.spec.path} is a list of sections: edit it in the YAML (ctrl+o "
                        "loads it).", timeout=4)
            return
        field.opened = True
        control = field.control
        if isinstance(control, BoolValue):
            control.value = not control.value
            self._edited(field, control.value)
        elif isinstance(control, Select):
            control.can_focus = True
            control.action_show_overlay()
            # The overlay is focused now, not a turn later, so keys already on their way choose.
            self.screen.set_focus(control.query_one(OptionList), scroll_visible=False)
        else:
            control.can_focus = True
            self.screen.set_focus(control)

    def action_done(self) -> None:
        """Leave the editor; the list has the focus again."""
        self.stop_editing()

    def stop_editing(self) -> None:
        """Give the focus back to the list (what was typed is already applied)."""
        if self.editing is not None:
            self.screen.set_focus(self)

    def action_move(self, delta: int) -> None:
        """Leave any editor and highlight the field above or below."""
        self.stop_editing()
        self.cursor = max(0, min(len(self.fields) - 1, self.cursor + delta))

    def action_next_field(self, delta: int) -> None:
        """Next (or previous) field, wrapping; from a text editor, into the next one's."""
        editing = self.editing
        self.stop_editing()
        self.cursor = (self.cursor + delta) % len(self.fields)
        if editing is not None and self.current.editable_in_place:
            self.action_edit()

    def action_page(self, direction: int) -> None:
        """Highlight the field a screenful up or down."""
        per_page = max(1, self.scrollable_content_region.height // 3)
        self.action_move(direction * per_page)

    def action_jump(self, index: int) -> None:
        """Highlight the first (0) or the last (-1) field."""
        self.cursor = index % len(self.fields)

    def action_find_anywhere(self) -> None:
        """``ctrl+f``: find a field, also from an editor."""
        self.action_find()

    def action_find(self) -> None:
        """Jump to a field by (fuzzy) name, from a list of them all."""
        self.stop_editing()
        self.app.push_screen(CommandPalette(providers=[FieldFinder],
                                            placeholder="Jump to a field (name or help words)…"))

    def _select_expanded(self, expanded: bool) -> None:
        """A drop-down closed (chosen, Esc or a click elsewhere): back to the list."""
        if not expanded:
            for select in self.query(Select):
                select.can_focus = False
            if self.screen.focused is None or self.editing is not None:
                self.screen.set_focus(self)

    @on(Input.Blurred)
    def input_left(self, event: Input.Blurred) -> None:
        """An editor lost the focus (Enter, Esc, Tab, a click, another screen's key): only the
        list can take it again."""
        if self.screen.focused is not event.input:
            event.input.can_focus = False

    def on_click(self, event: events.Click) -> None:
        """A click on a field highlights it; on its value, edits it."""
        widget = event.widget
        field = next((node for node in (widget.ancestors_with_self if widget else ())
                      if isinstance(node, ConfigField)), None)
        if field is None:
            return
        self.screen.set_focus(self)
        self.cursor = self.fields.index(field)
        if widget is not None and any(node is field.control for node in widget.ancestors_with_self):
            self.action_edit()

    # --- values ----------------------------------------------------------------------------

    def load(self, config: RunConfig) -> None:
        """Show every value of ``config``."""
        for field in self.query(ConfigField):
            field.show(get_value(config, field.spec.path))

    def unapplied(self, config: RunConfig) -> list[tuple[str, Any, str | None]]:
        """Fields the user edited whose shown value ``config`` does not hold (yet: their
        change messages are still on the way): (path, parsed value, typing error)."""
        out: list[tuple[str, Any, str | None]] = []
        for field in self.fields:
            if not field.opened:
                continue
            control = field.control
            value, error = control.value, None
            if isinstance(control, Input):
                try:
                    value = parse_value(field.spec, control.value)
                except ValueError as exc:
                    value, error = None, f"'{control.value.strip()}' {exc}"
            if error is not None or value != get_value(config, field.spec.path):
                out.append((field.spec.path, value, error))
        return out

    def show_errors(self, errors: dict[str, str]) -> None:
        """Show ``errors`` (dotted path -> message) and clear every other field's."""
        for field in self.query(ConfigField):
            path = field.spec.path
            # a read-only list shows its items' errors too (data.sources[1].weight)
            found = [f"{key.removeprefix(path)}: {text}" if key != path else text
                     for key, text in errors.items()
                     if key == path or (field.spec.kind == "summary" and key.startswith(path + "["))]
            field.show_error(" ".join(found) or None)

    def _edited(self, field: ConfigField, raw: Any) -> None:
        spec = field.spec
        if isinstance(raw, str) and spec.kind != "choice":
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
    @on(Select.Changed)
    def value_changed(self, event: Input.Changed | Select.Changed) -> None:
        """Parse typed text as it changes, or take a drop-down choice."""
        event.stop()
        field = event.control.parent
        if isinstance(field, ConfigField) and field.opened:
            self._edited(field, event.value)
