"""The tunetop application shell: one mode per screen, switched with a key.

Importing this module must stay cheap: no torch, transformers or datasets. The engine loads
those inside its own thread when a run starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from textual import on
from textual.app import App
from textual.binding import Binding

from core.config import RunConfig
from tui.commands import TunetopCommands
from tui.dataset_tasks import DatasetServices
from tui.messages import CloneConfig, FollowRun, ReviewRun, StartRun
from tui.screens.dataset import DatasetScreen
from tui.screens.hyperparams import EstimateServices, HyperparamsScreen
from tui.screens.review import ReviewScreen
from tui.screens.runs import RunsScreen
from tui.screens.training import TrainingScreen, training_screen


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


REQUEST_MODES: dict[type, str] = {StartRun: "training", FollowRun: "training", ReviewRun: "review"}
"""The screen (mode) that handles each cross-screen request."""


class TunetopApp(App[None]):
    """Fine-tune an LLM from the terminal: data, config, training, review, runs."""

    TITLE = "tunetop"
    CSS_PATH = "styles/app.tcss"
    MODES = {
        "dataset": DatasetScreen,
        "hyperparams": HyperparamsScreen,
        "training": TrainingScreen,
        "review": ReviewScreen,
        "runs": RunsScreen,
    }
    DEFAULT_MODE = "dataset"
    COMMANDS = App.COMMANDS | {TunetopCommands}
    BINDINGS = [
        Binding("1", "switch_mode('dataset')", "Data", id="mode.dataset"),
        Binding("2", "switch_mode('hyperparams')", "Config", id="mode.hyperparams"),
        Binding("3", "switch_mode('training')", "Train", id="mode.training"),
        Binding("4", "switch_mode('review')", "Review", id="mode.review"),
        Binding("5", "switch_mode('runs')", "Runs", id="mode.runs"),
        Binding("question_mark", "show_help", "Keys", id="app.help"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]
    """Screen switching, help and quit; every screen adds its own keys."""

    def __init__(
        self,
        config: RunConfig | None = None,
        services: AppServices | None = None,
        workspace: str = "runs",
        dataset: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config or RunConfig()
        if dataset:
            self.config.data.path = dataset
        self.services = services or AppServices()
        self.workspace = workspace
        """Folder of the runs (and review sets) this app starts and lists."""
        self.attach_dir: Path | None = None
        """A run to follow on opening (``tunetop attach``); ``None`` otherwise."""
        self.config_modified = False
        """Whether ``config`` has edits not saved to a file (the config screen sets it)."""
        self.farewell: str | None = None
        """A line for the shell once the app has closed (how to get back to a detached run);
        the command line prints it unwrapped, so the command copies whole."""

    @on(StartRun)
    @on(FollowRun)
    @on(ReviewRun)
    async def forward_request(self, request: StartRun | FollowRun | ReviewRun) -> None:
        """A screen asked another for something: switch to that screen and hand it over."""
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
        """Quit. A run training in this process is asked to stop first (it saves a
        checkpoint) and the app exits once it ended; a second quit exits at once. A detached
        run keeps training, and the way back to it is printed."""
        screen = training_screen(self)
        if screen is not None and screen.trains_in_process and not screen.quitting:
            if self.current_mode != "training":
                await self.switch_mode("training")
            screen.stop_then_quit()
            return
        if screen is not None and screen.detached_live and screen.run_dir is not None:
            self.farewell = f"The run keeps training; attach with: tunetop attach {screen.run_dir}"
            self.exit()
            return
        self.exit()

    def action_show_help(self) -> None:
        """Toggle Textual's key panel listing every key of the current screen."""
        if self.screen.query("KeyPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()


def make_app(**kwargs: Any) -> TunetopApp:
    """Factory used by the CLI and tests (tests pass fake services)."""
    return TunetopApp(**kwargs)
