"""The chat screen: talk to one model, or to two side by side, with streamed replies.

Model A and model B are any model the review offers (a base, a run's final output, a
complete checkpoint); B empty talks to A alone. Each message goes through the chat template
and system prompt the run trained with (or the system prompt typed here), and each side
keeps its own multi-turn history. Replies stream in a thread worker
(:func:`core.chat.stream_turn`); its events reach the screen as :class:`ChatScreen.EventReceived`
messages, posted at most every 50 ms per side while text streams (the finished reply always).
Loading shows its phase in the status line; the event loop never waits on the model.

Keys: Enter writes a message (Enter again sends it), Esc stops the reply (keeping what was
written) or leaves the message field, ctrl+l clears the conversation, ``s`` toggles side by
side, ``b`` hides the model names (blind: the sides are shuffled) and shows them again.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, Select, Static, TextArea
from textual.worker import Worker, WorkerState

from core.chat import ChatEvent, ChatModels, ChatPhase, ReplyFinished, ReplyStreamed, TurnRequest
from core.generate import GenerationSettings, resolve_pair
from core.review import ReviewChoices, ReviewSet, scan_workspace
from tui.messages import ChatRun
from tui.widgets.chat_list import ChatList
from tui.widgets.chat_pane import ChatPane, Turn

STREAM_INTERVAL = 0.05
"""Seconds between two streamed updates of one side: 20 redraws a second at most."""


class ChatScreen(Screen):
    """Talk to the base model and the fine-tune, alone or side by side, streaming."""

    CSS_PATH = "../styles/chat.tcss"
    AUTO_FOCUS = "#chat-pane-0"  # not a field: screen keys must work on arrival
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (70, "-wide")]
    """Below 70 columns the two sides stack instead of sitting side by side."""

    # The keys that move the focus are priority bindings that move it at once
    # (Screen.set_focus), so keys that follow in the same burst (SSH sends a fast typist's
    # keys in one packet) go to the field focused when they arrive; in a text field the
    # printable ones type (check_action), Enter sends and Esc stops or leaves.
    BINDINGS = [
        Binding("enter", "write", "Write", tooltip="a message (Enter sends it)", priority=True,
                id="chat.write"),
        Binding("i", "write", "Write", show=False, tooltip="a message (Enter sends it)",
                priority=True, id="chat.write-i"),
        Binding("escape", "stop", "Stop", tooltip="the reply (keeps what was written)",
                priority=True, id="chat.stop"),
        Binding("escape", "back", "Leave", show=False, tooltip="the field (when no reply streams)",
                priority=True, id="chat.leave"),
        Binding("ctrl+l", "clear", "Clear", tooltip="the conversation", priority=True,
                id="chat.clear"),
        Binding("s", "toggle_side_by_side", "Side by side", tooltip="(or one model)",
                id="chat.side-by-side"),
        Binding("b", "toggle_blind", "Blind", tooltip="(hide or show which model is which)",
                id="chat.blind"),
        Binding("a", "add_to_review", "Add to review", show=False,
                tooltip="(the last message and both answers, to judge blind)",
                id="chat.add-to-review"),
        Binding("o", "open_chat", "Open", show=False, tooltip="a saved conversation",
                id="chat.open"),
        Binding("m", "focus_models", "Models", show=False, tooltip="(choose A and B)",
                priority=True, id="chat.models"),
        Binding("t", "focus_settings", "Settings", show=False,
                tooltip="(system prompt, temperature, top-p, max tokens)", priority=True,
                id="chat.settings"),
        Binding("ctrl+r", "rescan", "Rescan", show=False, tooltip="the workspace's models",
                id="chat.rescan"),
        Binding("tab", "next_field(1)", "", show=False, priority=True, id="chat.next"),
        Binding("shift+tab", "next_field(-1)", "", show=False, priority=True, id="chat.previous"),
    ]
    """In the footer: Enter (or ``i``) write, Esc stop (while a reply streams), ctrl+l clear,
    ``s`` side by side, ``b`` blind. Under ``?`` and in the palette also: ``a`` add the last
    exchange to a review set, ``o`` open a saved conversation, ``m`` models, ``t`` settings,
    ctrl+r rescan. In the message field Enter sends and Esc stops the reply or,
    with none streaming, leaves the field."""

    generating: reactive[bool] = reactive(False, bindings=True)
    """A reply is streaming (or its model loading)."""
    blind: reactive[bool] = reactive(False, bindings=True)
    """The sides are labelled Left and Right, in an order drawn at random."""

    @dataclasses.dataclass
    class EventReceived(Message):
        """An event of the reply worker (a phase, streamed text, a finished reply)."""

        event: ChatEvent
        turn: int
        """The message it answers (events of a cleared conversation are dropped)."""

    def __init__(self, name: str | None = None, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.histories: list[list[dict[str, str]]] = [[], []]
        """Each side's conversation (the model's own answers), as sent to it."""
        self.turns: list[list[Turn]] = [[], []]
        """Each side's turns as shown (with notes)."""
        self.swapped = False
        """Side B is on the left (drawn when blind mode starts, kept on reveal)."""
        self.scan: ReviewChoices | None = None
        self._stop = threading.Event()
        self._models: ChatModels | None = None
        self._preselect: Path | None = None
        self._sides: list[int] = [0]
        """The sides of the reply in flight."""
        self._turn = 0
        """Counts messages sent and clears: events of an earlier one are dropped."""
        self._phase: tuple[str, float] | None = None
        """The phase shown while no text streams (loading, reading the prompt) and since when."""
        self._used_settings = GenerationSettings(batch_size=1)
        """The settings of the last message sent (recorded with a review finding)."""
        self.review_set: ReviewSet | None = None
        """The review set chat findings of these two models go to (``a``)."""
        self.chat_path: Path | None = None
        """Where this conversation is saved (after each reply); ``None`` until the first."""
        self._added: tuple[int, int] | None = None
        """The conversation (its list's id) and length last added: one exchange, once."""

    # --- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Models, settings, the two panes, the status line and the message field."""
        yield Header()
        with Horizontal(id="chat-models", classes="chat-row"):
            yield Label("A", classes="chat-label")
            yield Select([], id="chat-model-a", compact=True, allow_blank=True,
                         prompt="model A")
            yield Label("B", classes="chat-label")
            yield Select([], id="chat-model-b", compact=True, allow_blank=True,
                         prompt="none: A alone")
        with Horizontal(id="chat-settings", classes="chat-row"):
            yield Label("System", classes="chat-small-label")
            yield Input("", id="chat-system", compact=True,
                        placeholder="as in training")
            yield Label("Temp", classes="chat-small-label")
            yield Input("0", id="chat-temperature", type="number", compact=True,
                        classes="chat-number")
            yield Label("Top-p", classes="chat-small-label")
            yield Input("1", id="chat-top-p", type="number", compact=True, classes="chat-number")
            yield Label("Max", classes="chat-small-label")
            yield Input(str(GenerationSettings.max_new_tokens), id="chat-max-tokens",
                        type="integer", compact=True, classes="chat-number")
        with Horizontal(id="chat-panes"):
            yield ChatPane(id="chat-pane-0")
            yield ChatPane(id="chat-pane-1")
        yield Static("", id="chat-status", markup=False)
        yield Input("", id="chat-input", compact=True,
                    placeholder="Message (Enter sends; Esc stops a reply or leaves)")
        yield Footer()

    def on_mount(self) -> None:
        """Read the workspace's models."""
        self._show_status("Reading the workspace…")
        self.action_rescan()
        self.set_interval(0.5, self._tick_phase)

    def on_unmount(self) -> None:
        """Leaving the app stops a reply at the next token so the process can exit."""
        self._stop.set()

    @property
    def models(self) -> ChatModels:
        """The loaded models, kept between turns (the app's factory, else the default)."""
        if self._models is None:
            factory = getattr(self.app.services, "chat_models", None)
            self._models = factory() if factory is not None else ChatModels()
        return self._models

    @property
    def side_by_side(self) -> bool:
        """Whether model B is chosen."""
        return self.query_one("#chat-model-b", Select).value is not Select.NULL

    # --- bindings ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc shows as Stop only while a reply streams; letters type in a text field; Enter
        and Esc are the open drop-down's own."""
        focused = self.app.focused
        typing = isinstance(focused, (Input, TextArea))
        dropped = any(select.expanded for select in self.query(Select))
        if action == "stop":
            return self.generating and not dropped
        if action == "back":
            return isinstance(focused, (Input, Select)) and not dropped
        if action == "write":
            return not typing and not isinstance(focused, Select) and not dropped
        if action in ("focus_models", "focus_settings"):
            return not typing and not dropped
        if action == "next_field":
            return not dropped
        if action == "toggle_blind":
            return self.side_by_side
        if action == "toggle_side_by_side":
            return not self.generating
        if action == "add_to_review":
            return self._last_exchange() is not None
        if action == "open_chat":
            return not self.generating
        return True

    def action_write(self) -> None:
        """Put the keyboard in the message field."""
        self.set_focus(self.query_one("#chat-input", Input))

    def action_stop(self) -> None:
        """Stop the reply at the next token (what was written stays)."""
        self._stop.set()
        self._show_status("Stopping…")

    def action_back(self) -> None:
        """Leave the field that has the keyboard (screen keys work again)."""
        self.set_focus(None)

    def action_clear(self) -> None:
        """Forget the conversation on both sides (a streaming reply is stopped first)."""
        if self.generating:
            self._stop.set()
        self._turn += 1  # what the stopped reply still sends is dropped
        self.histories = [[], []]
        self.turns = [[], []]
        self.chat_path = None  # the next message starts a new saved conversation
        self._render_panes()
        self._show_status("Conversation cleared.")

    def action_next_field(self, step: int) -> None:
        """Tab and shift+Tab: the next or previous field, at once."""
        if step > 0:
            self.focus_next()
        else:
            self.focus_previous()

    def action_toggle_side_by_side(self) -> None:
        """Talk to A and B, or to A alone."""
        select = self.query_one("#chat-model-b", Select)
        if select.value is not Select.NULL:
            select.clear()
        elif self.scan is not None:
            select.value = self._default_b(self.scan)

    def action_toggle_blind(self) -> None:
        """Hide which model wrote which side (shuffled anew), or reveal it (the sides stay
        where they are)."""
        self.blind = not self.blind
        if self.blind:
            self.swapped = random.random() < 0.5
        self._render_panes()

    def _last_exchange(self) -> tuple[list[dict[str, str]], str, str] | None:
        """A's conversation up to the last user message and both last answers, when both
        sides answered it."""
        a, b = self.histories
        if self.generating or not self.side_by_side or not a or not b:
            return None
        if a[-1]["role"] != "assistant" or b[-1]["role"] != "assistant" or a[-2] != b[-2]:
            return None
        if self._added == (id(a), len(a)):
            return None  # added already
        return a[:-1], a[-1]["content"], b[-1]["content"]

    def action_add_to_review(self) -> None:
        """Add the last message and both answers to a review set (one per pair of models),
        to be judged blind and counted on the Review screen."""
        exchange = self._last_exchange()
        spec_a, spec_b = self._spec(0), self._spec(1)
        if exchange is None or spec_a is None or spec_b is None:
            self.notify("Nothing to add: both models must have answered the last message.",
                        severity="warning")
            return
        from core.chat import add_to_review  # small files only: no torch

        messages, answer_a, answer_b = exchange
        try:
            a, b = resolve_pair(spec_a, spec_b, self.app.config.model.name_or_path)
            self.review_set = add_to_review(self.review_set, self.app.workspace, a, b, messages,
                                            answer_a, answer_b, self._used_settings)
        except (ValueError, OSError) as exc:  # GenerationError and ReviewError are ValueErrors
            self.notify(f"Could not add to a review set: {exc}", severity="error", timeout=10)
            return
        self._added = (id(self.histories[0]), len(self.histories[0]))
        count = self.review_set.total
        self.notify(f"Added to review set {self.review_set.name} ({count} item"
                    f"{'s' if count != 1 else ''}); judge it on the Review screen (4).")
        self.refresh_bindings()

    def action_focus_models(self) -> None:
        """Put the keyboard on model A's list."""
        self.set_focus(self.query_one("#chat-model-a", Select))

    def action_focus_settings(self) -> None:
        """Put the keyboard in the system prompt (Tab goes on to the numbers)."""
        self.set_focus(self.query_one("#chat-system", Input))

    def action_rescan(self) -> None:
        """List the workspace's models again (in a thread)."""
        self._scan(Path(str(self.app.workspace)), self.app.config.model.name_or_path)

    # --- models --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="chat-scan", exit_on_error=False)
    def _scan(self, workspace: Path, app_model: str) -> ReviewChoices:
        """Bases, finished runs and complete checkpoints, off the UI thread."""
        return scan_workspace(workspace, app_model)

    @staticmethod
    def _default_b(scan: ReviewChoices) -> Any:
        return scan.default_b if scan.default_b != scan.default_a else Select.NULL

    def _show_scan(self, scan: ReviewChoices) -> None:
        """Offer the scanned models; keep the choices still on offer, else the defaults
        (the newest finished run beside its base)."""
        first = self.scan is None
        self.scan = scan
        offered = {value for _, value in scan.models}
        for selector, default in (("#chat-model-a", scan.default_a),
                                  ("#chat-model-b", self._default_b(scan))):
            select = self.query_one(selector, Select)
            keep = select.value
            select.set_options(scan.models)
            value = keep if keep in offered and not first else default
            if value is not Select.NULL:
                select.value = value
        if self._preselect is not None:
            self._choose_run(self._preselect)
        self._show_status(self._ready_text())
        self._render_titles()

    def _choose_run(self, run_dir: Path) -> None:
        """Put the run's final output beside its base."""
        self._preselect = None
        picked = self.scan.for_run(run_dir) if self.scan is not None else None
        if picked is None:
            self.notify(f"{run_dir.name} has no final output yet: pick a checkpoint as B.",
                        severity="warning")
            return
        a, b, _ = picked
        if a is not None:
            self.query_one("#chat-model-a", Select).value = a
        self.query_one("#chat-model-b", Select).value = b

    @on(ChatRun)
    def chat_run(self, message: ChatRun) -> None:
        """Another screen asks to talk to a run: preselect it after the next scan."""
        self._preselect = message.run_dir
        self.action_rescan()

    @on(Select.Changed, "#chat-model-a, #chat-model-b")
    def model_changed(self, event: Select.Changed) -> None:
        """Note the change in the conversation; the next message goes to the new model."""
        side = 0 if event.select.id == "chat-model-a" else 1
        self._render_titles()
        self.refresh_bindings()
        if event.value is Select.NULL or not self.turns[side]:
            self._render_panes()
            return
        self.turns[side].append(Turn("note", f"— now talking to {self._model_label(side)} —"))
        self._render_panes()

    def _model_label(self, side: int) -> str:
        select = self.query_one("#chat-model-a" if side == 0 else "#chat-model-b", Select)
        if select.value is Select.NULL:
            return "none"
        for label, value in (self.scan.models if self.scan else []):
            if value == select.value:
                return label
        return str(select.value[1])

    def _spec(self, side: int) -> str | None:
        select = self.query_one("#chat-model-a" if side == 0 else "#chat-model-b", Select)
        return None if select.value is Select.NULL else str(select.value[1])

    # --- sending -------------------------------------------------------------------------

    @on(Input.Submitted, "#chat-input")
    def send(self, event: Input.Submitted) -> None:
        """Send the message to A (and B), streaming the replies."""
        text = event.value.strip()
        if not text:
            return
        if self.generating:
            self.notify("A reply is still streaming: Esc stops it.", severity="warning")
            return
        settings = self._settings()
        if isinstance(settings, str):
            self.notify(settings, severity="error", timeout=8)
            return
        spec_a, spec_b = self._spec(0), self._spec(1)
        if spec_a is None:
            self.notify("Choose model A first (m)." if self.scan is not None else
                        "Still reading the workspace's models: send again in a moment.",
                        severity="warning")
            return
        event.input.value = ""
        sides = [0, 1] if spec_b is not None else [0]
        for side in sides:
            self.histories[side].append({"role": "user", "content": text})
            self.turns[side].append(Turn("user", text))
            self.turns[side].append(Turn("assistant", ""))
        self._render_panes()
        self._stop = threading.Event()
        self._sides = sides
        self._turn += 1
        self._used_settings = settings
        self._phase = ("Starting…", time.monotonic())
        self.generating = True
        self._show_status("Starting…")
        system = self.query_one("#chat-system", Input).value.strip() or None
        self._reply(spec_a, spec_b, [list(self.histories[s]) for s in sides], settings, system,
                    self._stop, self._turn)

    def _settings(self) -> GenerationSettings | str:
        """The sampling settings of the form, or what to fix."""
        values: dict[str, Any] = {}
        for selector, name, kind in (("#chat-temperature", "temperature", float),
                                     ("#chat-top-p", "top_p", float),
                                     ("#chat-max-tokens", "max_new_tokens", int)):
            raw = self.query_one(selector, Input).value.strip()
            try:
                values[name] = kind(raw)
            except ValueError:
                return f"{name} {raw!r} is not a number. Fix: type one (t goes to the settings)."
        settings = GenerationSettings(batch_size=1, **values)
        problems = settings.problems()
        return " ".join(problems) if problems else settings

    @work(thread=True, exclusive=True, group="chat-reply", exit_on_error=False)
    def _reply(self, spec_a: str, spec_b: str | None, histories: list[list[dict[str, str]]],
               settings: GenerationSettings, system: str | None, stop: threading.Event,
               turn: int) -> None:
        """Resolve the models, load what is missing, stream each side's reply."""
        if spec_b is None:
            refs = [resolve_pair(spec_a, spec_a, self.app.config.model.name_or_path)[0]]
        else:
            refs = list(resolve_pair(spec_a, spec_b, self.app.config.model.name_or_path))
        last_post = [0.0, 0.0]

        def sink(event: ChatEvent) -> None:
            # post_message is thread-safe and does not wait; streamed text is throttled
            # (each update carries the whole reply, so a skipped one loses nothing).
            if isinstance(event, ReplyStreamed):
                now = time.monotonic()
                if now - last_post[event.side] < STREAM_INTERVAL:
                    return
                last_post[event.side] = now
            self.post_message(self.EventReceived(event, turn))

        from core.chat import stream_turn  # torch loads here, in the worker thread

        stream_turn(TurnRequest(refs, histories, settings, system, self.app.config.data, stop),
                    self.models, sink)

    @on(EventReceived)
    def show_event(self, message: EventReceived) -> None:
        """Show a phase, streamed text or a finished reply."""
        event = message.event
        if message.turn != self._turn:
            return  # the conversation was cleared since
        if isinstance(event, ChatPhase):
            self._phase = (event.text, time.monotonic())
            self._show_status(event.text)
        elif isinstance(event, ReplyStreamed):
            self._phase = None
            side = self._sides[event.side]
            turn = self.turns[side][-1]
            turn.text = event.text.lstrip()
            self._pane_of(side).update_last(turn)
            self._show_status(f"{self._side_name(side)}: {event.tokens} tokens…")
        elif isinstance(event, ReplyFinished):
            side = self._sides[event.side]
            self.histories[side].append({"role": "assistant", "content": event.text})
            turn = self.turns[side][-1]
            turn.text = event.text
            turn.note = _speed(event)
            self._pane_of(side).update_last(turn)
            self._show_status(f"{self._side_name(side)}: {turn.note}")

    @on(Worker.StateChanged)
    def worker_state(self, event: Worker.StateChanged) -> None:
        """Route worker results; every failure is shown, never swallowed."""
        group, state = event.worker.group, event.state
        if group == "chat-scan":
            if state == WorkerState.SUCCESS:
                self._show_scan(event.worker.result)
            elif state == WorkerState.ERROR:
                self._show_status(f"Could not read {self.app.workspace}: {event.worker.error}")
        elif group == "chat-reply" and state in (WorkerState.SUCCESS, WorkerState.ERROR,
                                                 WorkerState.CANCELLED):
            self._reply_ended(event.worker.error if state == WorkerState.ERROR else None)
        else:
            pass  # PENDING and RUNNING need nothing

    def _tick_phase(self) -> None:
        """Count the seconds of a phase (a model loading can take a while)."""
        if self.generating and self._phase is not None:
            text, since = self._phase
            self._show_status(f"{text} {time.monotonic() - since:.0f} s")

    def _reply_ended(self, error: BaseException | None) -> None:
        """Drop the empty turns of sides that never answered; say how it ended."""
        self.generating = False
        self._phase = None
        for side in self._sides:
            turns = self.turns[side]
            if turns and turns[-1].role == "assistant" and len(self.histories[side]) and \
                    self.histories[side][-1]["role"] == "user":
                # No reply: forget the question too, so the history stays user/assistant.
                self.histories[side].pop()
                turns[-1] = Turn("note", "(no reply: failed)" if error else "(no reply: stopped)")
        self._render_panes()
        self._save()
        if error is not None:
            text = str(error).strip() or type(error).__name__
            self._show_status(f"Failed: {text}")
            self.notify(text, title="Chat failed", severity="error", timeout=10)
        elif self._stop.is_set():
            self._show_status("Stopped; the text so far is kept.")

    def watch_generating(self, generating: bool) -> None:
        """The models stay as they are while a reply streams."""
        for select in self.query(Select):
            select.disabled = generating

    # --- saving and reopening ------------------------------------------------------------

    def _save(self) -> None:
        """Write the conversation under ``<workspace>/chats/`` (a failure is shown)."""
        from core.chat import new_chat_path, save_chat

        if not any(self.histories):
            return
        if self.chat_path is None:
            self.chat_path = new_chat_path(self.app.workspace)
        choices = [self.query_one(sel, Select).value for sel in ("#chat-model-a", "#chat-model-b")]
        data = {
            "models": [None if c is Select.NULL else list(c) for c in choices],
            "labels": [self._model_label(0), self._model_label(1)],
            "system": self.query_one("#chat-system", Input).value,
            "settings": self._used_settings.to_dict(),
            "histories": self.histories,
            "turns": [[dataclasses.asdict(t) for t in side] for side in self.turns],
        }
        try:
            save_chat(self.chat_path, data)
        except OSError as exc:
            self.notify(f"Could not save the conversation to {self.chat_path}: {exc}",
                        severity="error", timeout=10)

    def action_open_chat(self) -> None:
        """List the saved conversations; the chosen one replaces this one."""
        from core.chat import list_chats

        chats = list_chats(self.app.workspace)
        if not chats:
            self.notify(f"No saved conversations in {Path(str(self.app.workspace)) / 'chats'} "
                        "yet: each reply is saved there.")
            return
        self.app.push_screen(ChatList(chats), self._reopen)

    def _reopen(self, path: Path | None) -> None:
        """Show a saved conversation, with its models when they are still offered."""
        from core.chat import ChatFileError, load_chat

        if path is None:
            return
        try:
            data = load_chat(path)
            turns = [[Turn(**t) for t in side] for side in data["turns"]]
        except (ChatFileError, TypeError) as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        offered = {value for _, value in (self.scan.models if self.scan else [])}
        missing = []
        for selector, choice, label in zip(("#chat-model-a", "#chat-model-b"),
                                           data.get("models", [None, None]),
                                           data.get("labels", ["", ""])):
            select = self.query_one(selector, Select)
            with self.prevent(Select.Changed):  # no "now talking to" notes: it is the same chat
                if choice is None:
                    select.clear()
                elif tuple(choice) in offered:
                    select.value = tuple(choice)
                else:
                    missing.append(label)
        self.query_one("#chat-system", Input).value = str(data.get("system") or "")
        self.histories = [list(side) for side in data["histories"]]
        self.turns = turns
        self.chat_path = path
        self._added = None
        self._render_panes()
        self.refresh_bindings()
        self._show_status(f"Reopened {path.name}.")
        if missing:
            self.notify(f"No longer offered: {', '.join(missing)}. The next message goes to the "
                        "models chosen now.", severity="warning")

    # --- rendering -----------------------------------------------------------------------

    def _pane_of(self, side: int) -> ChatPane:
        position = side ^ int(self.swapped and self.side_by_side)
        return self.query_one(f"#chat-pane-{position}", ChatPane)

    def _side_name(self, side: int) -> str:
        if self.blind and self.side_by_side:
            return "Left" if (side ^ int(self.swapped)) == 0 else "Right"
        return (f"{'AB'[side]} " if self.side_by_side else "") + self._model_label(side)

    def _render_titles(self) -> None:
        both = self.side_by_side
        self.query_one("#chat-pane-1").display = both
        for side in (0, 1):
            self._pane_of(side).border_title = self._side_name(side)

    def _render_panes(self) -> None:
        self._render_titles()
        for side in (0, 1):
            self._pane_of(side).show(self.turns[side])

    def _ready_text(self) -> str:
        return "Enter writes a message; s: side by side; t: settings; ? every key."

    def _show_status(self, text: str) -> None:
        self.query_one("#chat-status", Static).update(text)


def _speed(reply: ReplyFinished) -> str:
    """``42 tokens · 31 tok/s · first 0.21 s`` (and ``stopped``): fits a pane at 80 columns."""
    parts = [f"{reply.tokens} tokens", f"{reply.tokens_per_second:.0f} tok/s"]
    if reply.first_token_seconds is not None:
        parts.append(f"first {reply.first_token_seconds:.2f} s")
    if reply.stopped:
        parts.append("stopped")
    return " · ".join(parts)
