"""The tunetop application shell: one mode per screen, switched with a key.

Importing this module must stay cheap: no torch, transformers or datasets. The engine loads
those inside its own thread when a run starts.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, TextArea

from core.config import RunConfig
from tui.commands import TunetopCommands
from tui.dataset_tasks import DatasetServices
from tui.messages import ChatRun, CloneConfig, FollowRun, ReviewRun, StartRun
from tui.screens.chat import ChatScreen
from tui.screens.dataset import DatasetScreen
from tui.screens.hyperparams import EstimateServices, HyperparamsScreen
from tui.screens.review import ReviewScreen
from tui.screens.runs import RunsScreen
from tui.screen_names import BY_MODE, SCREENS
from tui.screens.training import TrainingScreen, training_screen
from tui.widgets.confirm import Confirm


@dataclass
class AppServices:
    """What the screens use to reach the engine and the machine; tests pass fakes.

    Screens read these as ``self.app.services.<field>``; every field has a working default.
    """

    in_process: bool = False
    """Train inside the app's process instead of a detached worker (tests with fake engines);
    such a run stops when the app quits."""
    engine_factory: Callable[..., Any] | None = None
    """Builds an in-process engine for a config and an event sink; ``None`` uses
    ``core.engine.Engine``."""
    gpu_monitor_factory: Callable[[], Any] | None = None
    """Builds the GPU sampler for the VRAM gauge; ``None`` uses ``core.gpu.GpuMonitor``."""
    dataset: DatasetServices = field(default_factory=DatasetServices)
    """Tokenizer loading, row reading and content checks of the dataset screen."""
    estimate: EstimateServices = field(default_factory=EstimateServices)
    """Model config, memory and dataset measurements of the hyperparameters screen's estimate."""
    review_generator: Callable[..., Any] | None = None
    """Generates the review's answer pairs; ``None`` uses ``core.generate.generate_pairs``."""
    detach_options: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of ``core.detach.launch_detached`` (tests pick the engine)."""
    clock: Callable[[], float] = time.time
    """Wall clock of the training screen's elapsed times (snapshot tests freeze it)."""
    chat_models: Callable[[], Any] | None = None
    """Builds the chat screen's model cache; ``None`` uses ``core.chat.ChatModels``."""


REQUEST_MODES: dict[type, str] = {StartRun: "training", FollowRun: "training", ReviewRun: "review",
                                  ChatRun: "chat"}
"""The screen (mode) that handles each cross-screen request."""


def named_screen(screen_class: type[Screen], mode: str) -> Callable[[], Screen]:
    """A ``MODES`` entry: the screen, titled with its one name (``tunetop · Config``)."""

    def make() -> Screen:
        screen = screen_class()
        screen.title = f"tunetop · {BY_MODE[mode].name}"
        return screen

    return make


def is_typing(app: App) -> bool:
    """Whether the keyboard is in a text field (printable keys type there)."""
    return isinstance(app.focused, (Input, TextArea))


class TunetopApp(App[None]):
    """Fine-tune an LLM from the terminal: data, config, training, review, runs, chat."""

    TITLE = "tunetop"
    CSS_PATH = "styles/app.tcss"
    MODES = {
        mode: named_screen(screen_class, mode)
        for mode, screen_class in (("dataset", DatasetScreen), ("hyperparams", HyperparamsScreen),
                                   ("training", TrainingScreen), ("review", ReviewScreen),
                                   ("runs", RunsScreen), ("chat", ChatScreen))
    }
    DEFAULT_MODE = "dataset"
    COMMANDS = App.COMMANDS | {TunetopCommands}
    # Priority: they act as the key arrives, whatever has the focus (a list, a table, a
    # drop-down), except that printable keys type into a text field (check_action).
    BINDINGS = [
        *(Binding(screen.key, f"screen_key({screen.mode!r})", f"{screen.name} screen",
                  show=False, priority=True, id=f"mode.{screen.mode}") for screen in SCREENS),
        Binding("question_mark", "show_help", "Keys", priority=True, id="app.help"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="app.quit"),
    ]
    """Screen keys ``1``-``6``, ``?`` (every key of the screen) and ``ctrl+q`` (quit) work on
    every screen; the footer shows ``? Keys`` and the palette key, each screen its own keys."""

    def __init__(
        self,
        config: RunConfig | None = None,
        services: AppServices | None = None,
        workspace: str = "runs",
        dataset: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config or RunConfig()
        if dataset:  # --dataset opens that file, instead of any data.sources mix
            self.config.data.path, self.config.data.sources = dataset, []
        self.services = services or AppServices()
        self.workspace = workspace
        """Folder of the runs (and review sets) this app starts and lists."""
        self.attach_dir: Path | None = None
        """A run to follow on opening (``tunetop attach``); ``None`` otherwise."""
        self.farewell: str | None = None
        """A line for the shell once the app has closed (how to get back to a detached run);
        the command line prints it unwrapped, so the command copies whole."""
        self.config_edits_on_the_way: list[Callable[[], list[str]]] = []
        """Functions naming config fields a screen shows edited that ``config`` does not hold
        yet (their change messages are still on the way); the Config screen adds one."""
        self._config_baseline = dataclasses.asdict(self.config)
        self._quit_question: Confirm | None = None

    @property
    def config_modified(self) -> bool:
        """Whether the config (as shown) differs from the one last loaded, saved or started."""
        return bool(self.modified_fields())

    def modified_fields(self) -> list[str]:
        """Dotted names of the fields that differ from the config last loaded, saved or
        started, counting edits shown but not applied yet."""
        def flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in values.items():
                if isinstance(value, dict):
                    out |= flat(value, f"{prefix}{key}.")
                else:
                    out[prefix + key] = value
            return out

        now, then = flat(dataclasses.asdict(self.config)), flat(self._config_baseline)
        names = [name for name in now if now[name] != then.get(name)]
        for on_the_way in self.config_edits_on_the_way:
            names += [name for name in on_the_way() if name not in names]
        return names

    def config_saved(self, config: RunConfig | None = None) -> None:
        """Remember ``config`` (default: the app's) as loaded, saved or started: quitting
        with it asks nothing."""
        self._config_baseline = dataclasses.asdict(config or self.config)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Screen keys and ``?`` type into a text field, and wait while a dialog is open."""
        if action in ("screen_key", "show_help"):
            return not is_typing(self) and not isinstance(self.screen, ModalScreen)
        return True

    async def action_screen_key(self, mode: str) -> None:
        """A screen key (``1``-``6``): switch to that screen."""
        await self.switch_mode(mode)

    @on(StartRun)
    @on(FollowRun)
    @on(ReviewRun)
    @on(ChatRun)
    async def forward_request(self, request: StartRun | FollowRun | ReviewRun | ChatRun) -> None:
        """A screen asked another for something: switch to that screen and hand it over."""
        if isinstance(request, StartRun):
            self.config_saved(request.config)
        await self.switch_mode(REQUEST_MODES[type(request)])
        self.screen.post_message(request)

    @on(CloneConfig)
    async def clone_config(self, request: CloneConfig) -> None:
        """Edit a copy of a run's config on the config screen (it shows ``self.config``)."""
        await self.switch_mode("hyperparams")
        # Only after the switch: a config screen opening for the first time writes its
        # fields' initial values back into app.config while it mounts.
        self.config = request.config
        self.screen.post_message(request)  # it shows the new config
        self.notify(f"Editing a copy of {request.source.name}'s config; ctrl+t trains it as a new run."
                    if request.source else "Editing a copy of the run's config.")

    async def action_quit(self) -> None:
        """Quit; unsaved config edits are confirmed first. A run training in this process
        is asked to stop first (it saves a checkpoint) and the app exits once it ended; a
        second quit exits at once. A detached run keeps training, and the way back to it is
        printed."""
        if self._quit_question is not None and self.screen is self._quit_question:
            self._quit_question.dismiss(True)  # ctrl+q again: yes
            return
        if self.config_modified and self._quit_question is None:
            self._ask_before_quitting()
            return
        await self._quit_now()

    async def _quit_now(self) -> None:
        """Quit without asking about the config (see :meth:`action_quit`)."""
        screen = training_screen(self)
        if screen is not None and screen.trains_in_process and not screen.quitting:
            if self.current_mode != "training":
                await self.switch_mode("training")
            screen.stop_then_quit()
            return
        if screen is not None and screen.detached_live and screen.run_dir is not None:
            self.farewell = f"The run keeps training; attach with: tunetop attach {screen.run_dir}"
        self.exit()

    def _ask_before_quitting(self) -> None:
        """The small hook on quitting: confirm losing unsaved config edits."""
        fields = self.modified_fields()
        shown = ", ".join(fields[:4]) + (f" and {len(fields) - 4} more" if len(fields) > 4 else "")
        self._quit_question = Confirm(
            f"The config has unsaved changes ({shown}). Quit without saving them? "
            "(n, then ctrl+s on the Config screen saves them.)", "Quit", "Stay")

        def answered(quit_anyway: bool | None) -> None:
            if quit_anyway:
                self.call_later(self._quit_now)
            else:
                self._quit_question = None

        self.push_screen(self._quit_question, answered)

    def action_show_help(self) -> None:
        """Toggle Textual's key panel listing every key of the current screen."""
        if self.screen.query("KeyPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()


def make_app(**kwargs: Any) -> TunetopApp:
    """Factory used by the CLI and tests (tests pass fake services)."""
    return TunetopApp(**kwargs)
