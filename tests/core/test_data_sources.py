"""Where rows come from: LLaMA-Factory registries, folders ``load_dataset`` reads, Hub ids
(with their failures, offline and fast), and mixes of several sources, through
``tunetop inspect``, the dataset reader and a tiny training run.

No test touches the network: the Hub's answers are faked with the real exception types of
``huggingface_hub`` and ``datasets``; a local dataset card folder takes the same
``load_dataset`` path a Hub id does.
"""

from __future__ import annotations

import sys
import time

import pytest
from dataset_fixtures import (
    alpaca_history_rows,
    card_folder,
    general_rows,
    glaive_rows,
    mix_config,
    openai_tool_rows,
    registry_dir,
    v1_parts_rows,
    write_json,
    write_jsonl,
)

from core.config import DataConfig, RunConfig, SourceConfig
from core.data import (
    DataError,
    load_data,
    load_examples,
    parse_hub_id,
    plan_mix,
    read_registry,
    resolve_source,
    selection_ref,
)
from core.rows import read_batches, unpack


@pytest.fixture
def cli(bundled_dir, monkeypatch, capsys):
    """``tunetop ARGS`` in this process with the bundled tokenizer: (exit code, stdout,
    stderr)."""
    from transformers import AutoTokenizer

    import core.models
    from tui.cli import main

    tokenizer = AutoTokenizer.from_pretrained(bundled_dir)
    monkeypatch.setattr(core.models, "load_tokenizer", lambda ref, *a: tokenizer)

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return run


# --- LLaMA-Factory registries --------------------------------------------------------------


def test_inspect_lists_a_registrys_datasets(tmp_path, cli):
    folder = registry_dir(tmp_path)
    code, out, _ = cli("inspect", folder)
    assert code == 0 and "dataset_info.json: 7 dataset(s)" in out
    assert "glaive_toolcall: glaive_toolcall_demo.json (sharegpt; columns messages=conversations" \
           in out
    assert "dpo_demo: dpo_demo.json (sharegpt preference (ranking)" in out
    assert "modelscope_only: ModelScope AI-ModelScope/alpaca-gpt4-data-en" in out
    assert "cannot load: it is read from ModelScope" in out
    assert f"tunetop inspect {folder} --dataset alpaca_history" in out


@pytest.mark.parametrize("name, rows, first", [
    ("alpaca_history", 3, ("system", "Answer with one city.")),
    ("glaive_toolcall", 5, ("user", "Convert 100 dollars to EUR, please.")),
    ("shop_dialogs", 1, ("user", "Is the shop open?")),  # role_tag/content_tag/user_tag...
    ("renamed", 1, ("system", "Be exact.")),  # columns prompt/response/system renamed
    ("card", 2, ("user", "What's the weather in Paris?")),  # a card folder, its test split
])
def test_registry_entries_load_with_their_columns_and_tags(tmp_path, cli, name, rows, first):
    folder = registry_dir(tmp_path)
    loaded = load_examples(SourceConfig(str(folder), dataset=name))
    assert (loaded.total_rows, len(loaded.examples), loaded.dropped) == (rows, rows, 0)
    message = loaded.examples[0].messages[0]
    assert (message["role"], message["content"]) == first
    code, out, _ = cli("inspect", folder, "--dataset", name, "--max-length", 1024)
    assert code == 0 and f"{rows} usable of {rows}; 0 dropped" in out


def test_registry_tool_rows_keep_their_tools(tmp_path):
    loaded = load_examples(SourceConfig(str(registry_dir(tmp_path)), dataset="glaive_toolcall"))
    assert "entry 'glaive_toolcall' (formatting sharegpt)" in loaded.format_reason
    with_tools = [e for e in loaded.examples if e.tools]
    assert len(with_tools) == 4 and with_tools[0].messages[1]["tool_calls"]


def test_registry_errors_name_the_datasets_and_the_fix(tmp_path, cli):
    folder = registry_dir(tmp_path)
    with pytest.raises(DataError, match=r"has no dataset 'glaive'.*Did you mean glaive_toolcall"):
        load_examples(SourceConfig(str(folder), dataset="glaive"))
    with pytest.raises(DataError, match="read from ModelScope"):
        load_examples(SourceConfig(str(folder), dataset="modelscope_only"))
    with pytest.raises(DataError, match="preference dataset"):
        load_examples(SourceConfig(str(folder), dataset="dpo_demo"))
    config = RunConfig()
    config.data.path = str(folder)  # a registry needs data.dataset
    with pytest.raises(DataError, match=r"is a dataset registry .* 7 dataset\(s\).*data\.dataset"):
        load_data(config.data, 0)
    config.data.dataset = "alpaca_history"
    assert len(load_data(config.data, 0).examples) == 3
    (folder / "dataset_info.json").write_text("{not json")
    code, _, err = cli("inspect", folder)
    assert code == 1 and "cannot be read as JSON" in err


def test_registry_entries_read_from_the_hub_resolve_to_hub_ids(tmp_path):
    folder = tmp_path / "lf"
    folder.mkdir()
    write_json(folder / "dataset_info.json", {"remote": {
        "hf_hub_url": "llamafactory/glaive_toolcall_en", "subset": "demo", "split": "train",
        "formatting": "sharegpt", "columns": {"messages": "conversations", "tools": "tools"},
        "num_samples": 100}})
    resolved = resolve_source(SourceConfig(str(folder), dataset="remote"))
    assert (resolved.kind, resolved.location, resolved.subset) == (
        "hub", "llamafactory/glaive_toolcall_en", "demo")
    assert (resolved.format, resolved.max_rows) == ("sharegpt", 100)
    assert read_registry(folder)["remote"].where == "hub:llamafactory/glaive_toolcall_en:demo"


# --- folders load_dataset reads, and Hub ids -----------------------------------------------


def test_a_dataset_card_folder_loads_through_load_dataset(tmp_path, cli):
    folder = card_folder(tmp_path)
    loaded = load_examples(folder)
    assert (loaded.format, len(loaded.examples), loaded.dropped) == ("messages", 6, 0)
    assert loaded.label == f"{folder} (train)" and loaded.examples[0].tools
    config = DataConfig(path=str(folder), split="test")
    assert len(load_data(config, 0).examples) == 2
    with pytest.raises(DataError, match=r"no split 'validation'.*Set data.split"):
        load_data(DataConfig(path=str(folder), split="validation"), 0)
    code, out, _ = cli("inspect", folder, "--split", "test", "--max-length", 1024)
    assert code == 0 and "2 usable of 2; 0 dropped" in out
    file = folder / "data" / "test.jsonl"  # a file has no split: never silently all its rows
    with pytest.raises(DataError, match=r"is a file, which has no split \('test'\)"):
        load_data(DataConfig(path=str(file), split="test"), 0)


def test_hub_ids_and_local_paths_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_hub_id("HuggingFaceH4/ultrachat_200k") == ("HuggingFaceH4/ultrachat_200k", None)
    assert parse_hub_id("llamafactory/glaive_toolcall_en:demo") == (
        "llamafactory/glaive_toolcall_en", "demo")
    (tmp_path / "org").mkdir()
    write_jsonl(tmp_path / "org" / "name", [{"text": "a b"}])
    for local in ("data/train.jsonl", "./org/name", "org/name", "sample:support-tickets"):
        assert parse_hub_id(local) is None, local
    assert resolve_source(SourceConfig("org/name")).kind == "file"  # it exists here
    hub = resolve_source(SourceConfig("someone/chats:clean", split="test", revision="v2"))
    assert (hub.kind, hub.location, hub.subset, hub.split, hub.revision) == (
        "hub", "someone/chats", "clean", "test", "v2")


def test_an_unknown_hub_id_fails_at_once_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    started = time.monotonic()
    with pytest.raises(DataError) as info:
        load_examples("nobody-here/no-such-dataset")
    assert time.monotonic() - started < 5  # the libraries' own path retried for ~25-50 s
    assert "offline mode is on" in str(info.value) and "not in the local cache" in str(info.value)
    assert "unset HF_HUB_OFFLINE" in info.value.fix


def _http():
    """The HTTP library ``huggingface_hub`` raises with (httpx, or its fork)."""
    from huggingface_hub import errors

    return sys.modules[errors.Response.__module__.split(".")[0]]


def _hub_error(kind: str) -> Exception:
    from huggingface_hub import errors

    http = _http()
    if kind == "no network":
        return http.ConnectError("[Errno -2] Name or service not known")
    url = "https://huggingface.co/api/datasets/someone/private"
    response = http.Response(401 if kind == "gated" else 404, request=http.Request("GET", url))
    cls = errors.GatedRepoError if kind == "gated" else errors.RepositoryNotFoundError
    return cls(f"{response.status_code} Client Error", response=response)


@pytest.mark.parametrize("kind, expected", [
    ("not found", "was not found on the Hugging Face Hub"),
    ("no network", "no network: the Hub cannot be reached, and it is not in the local cache"),
    ("gated", "is a gated dataset"),
])
@pytest.mark.parametrize("where", ["probe", "load"])
def test_hub_failures_say_which_they_are(monkeypatch, tmp_path, kind, expected, where):
    """The quick look-up (``dataset_info``) and ``load_dataset`` itself fail the same three
    ways; each says which, with its fix."""
    import datasets
    from huggingface_hub import HfApi

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    error = _hub_error(kind)

    def fail(*args, **kwargs):
        raise error

    def load_fails(*args, **kwargs):
        # as datasets wraps them (datasets/load.py)
        if kind == "gated":
            raise datasets.exceptions.DatasetNotFoundError(
                "Dataset 'someone/private' is a gated dataset on the Hub.") from error
        if kind == "not found":
            raise datasets.exceptions.DatasetNotFoundError(
                "Dataset 'someone/private' doesn't exist on the Hub or cannot be accessed.")
        raise ConnectionError("Couldn't reach 'someone/private' on the Hub (ConnectError)")

    if where == "probe":
        monkeypatch.setattr(HfApi, "dataset_info", fail)
    else:
        monkeypatch.setattr(HfApi, "dataset_info", lambda *a, **k: object())
        monkeypatch.setattr(datasets, "load_dataset", load_fails)
    with pytest.raises(DataError) as info:
        load_examples("someone/private")
    assert expected in str(info.value)
    if kind == "gated":
        assert "hf auth login" in info.value.fix
    if kind == "not found":
        assert "hf auth login" in info.value.fix and "Check the id" in info.value.fix


def test_a_cached_hub_dataset_loads_from_the_cache_when_the_hub_is_unreachable(
        monkeypatch, tmp_path):
    import datasets
    from huggingface_hub import HfApi

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    cache = tmp_path / "cache"
    (cache / "someone___chats").mkdir(parents=True)  # as datasets names its cache folder
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    error = _hub_error("no network")

    def unreachable(*args, **kwargs):
        raise error

    calls = []

    def from_cache(path, name=None, split=None, revision=None, data_dir=None):
        calls.append((path, name, split, datasets.config.HF_HUB_OFFLINE))
        return datasets.Dataset.from_list(openai_tool_rows(4))

    monkeypatch.setattr(HfApi, "dataset_info", unreachable)
    monkeypatch.setattr(datasets, "load_dataset", from_cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    loaded = load_examples("someone/chats:clean")
    assert len(loaded.examples) == 4 and loaded.label == "someone/chats:clean (train)"
    assert calls == [("someone/chats", "clean", "train", True)]  # read from the cache only
    assert datasets.config.HF_HUB_OFFLINE is False  # and put back


# --- mixing --------------------------------------------------------------------------------


def test_plan_mix_draws_shares_without_repeats_reproducibly():
    # no weights: every row, capped by max_rows
    assert [len(c) for c in plan_mix([10, 4], [None, None], [None, 3], seed=1)] == [10, 3]
    # weights are shares of the largest set in which no row repeats
    chosen = plan_mix([100, 30], [0.75, 0.25], [None, None], seed=1)
    assert [len(c) for c in chosen] == [90, 30]
    assert all(len(set(c)) == len(c) and c == sorted(c) for c in chosen)
    assert chosen == plan_mix([100, 30], [0.75, 0.25], [None, None], seed=1)
    assert chosen != plan_mix([100, 30], [0.75, 0.25], [None, None], seed=2)
    # a source draws the same rows whatever is mixed with it
    assert plan_mix([100, 30], [None, None], [10, None], seed=1)[0] == \
        plan_mix([100, 30, 50], [None] * 3, [10, None, None], seed=1)[0]
    with pytest.raises(DataError, match="general has no usable rows.*weight 0.5"):
        plan_mix([10, 0], [0.5, 0.5], [None, None], 0, ["tools", "general"])
    for weight in (None, 0, -1, float("nan")):  # the config says so too; the reader may not ask
        with pytest.raises(DataError, match="needs a positive weight"):
            plan_mix([10, 5], [0.5, weight], [None, None], 0)


def test_load_data_mixes_two_sources_and_reports_each(tmp_path):
    tools = write_jsonl(tmp_path / "tools.jsonl", openai_tool_rows(12) + ["not a row"])
    general = write_json(tmp_path / "general.json", general_rows(40))
    data = DataConfig(sources=[SourceConfig(str(tools), weight=0.25),
                               SourceConfig(str(general), weight=0.75)])
    loaded = load_data(data, seed=3)
    tools_report, general_report = loaded.sources
    assert (tools_report.rows, tools_report.kept, tools_report.dropped) == (13, 12, 1)
    assert (tools_report.used, general_report.used, general_report.left_out) == (12, 36, 4)
    assert len(loaded.examples) == 48 and loaded.total_rows == 53 and loaded.dropped == 1
    assert loaded.format == "mixed" and loaded.label == "mix of 2 sources"
    assert {e.source for e in loaded.examples[:12]} == {str(tools)}
    assert [p.line for p in loaded.problems if p.severity == "error"] == [13]
    assert load_data(data, seed=3).examples == loaded.examples  # reproducible
    capped = load_data(DataConfig(sources=[SourceConfig(str(general), max_rows=5)]), seed=3)
    assert len(capped.examples) == 5 and capped.sources[0].left_out == 35
    assert capped.examples[0].source == ""  # one source: rows keep their plain names


def test_inspect_reads_a_run_configs_mix(tmp_path, cli):
    path = mix_config(tmp_path, "bundled:smollm2-135m-instruct", max_length=1024)
    code, out, _ = cli("inspect", path)
    assert code == 0, out
    assert "data      mix of 2 sources" in out and "24 usable of 24; 0 dropped" in out
    assert "tools.jsonl (messages): 12 read, 12 kept, 0 dropped; 12 used (50% of the mix; " \
           "weight 0.5)" in out
    assert "general.json (alpaca): 12 read" in out and out.count("checks: ") == 2
    assert "truncated 0 rows" in out


def test_sources_are_validated():
    config = RunConfig.from_dict({"data": {"dataset": "x", "format": "alpaca", "sources": [
        "a.jsonl", {"path": "", "weight": 0.5, "max_rows": 0, "format": "chat"}]}})
    fields = {p.field for p in config.validate()}
    assert {"data.dataset", "data.format", "data.sources[1].path", "data.sources[1].max_rows",
            "data.sources[1].format", "data.sources"} <= fields
    with pytest.raises(Exception, match=r"data.sources\[0\].wieght: unknown key"):
        RunConfig.from_dict({"data": {"sources": [{"path": "a.jsonl", "wieght": 1}]}})
    assert RunConfig.from_dict(config.to_dict()) == config  # YAML round trip


def test_the_screens_reader_gets_the_rows_training_reads(tmp_path):
    """The dataset screen reads a mix in its reader process: the same rows, in the same
    order (so that it splits and checks them as training will), numbered in the mix, each
    with its source and line."""
    tools = write_jsonl(tmp_path / "tools.jsonl", ["{broken"] + openai_tool_rows(6))
    general = write_json(tmp_path / "general.json", general_rows(20))
    data = DataConfig(sources=[SourceConfig(str(tools), weight=1),
                               SourceConfig(str(general), weight=2)])
    ref = selection_ref(data, 7)
    items = list(read_batches(ref))
    opened, batches = items[0], items[1:]
    assert opened.source == "mix of 2 sources" and [r.used for r in opened.sources] == [6, 12]
    rows = [(line, packed, source, origin) for b in (item.batch for item in batches)
            for line, packed, source, origin in zip(b.lines, b.rows, b.sources, b.origins)]
    assert [r[0] for r in rows] == list(range(1, 20))  # 18 used rows and the dropped one
    assert rows[0][1] is None and (rows[0][2], rows[0][3]) == (0, 1)
    kept = [unpack(line, packed) for line, packed, _, _ in rows if packed is not None]
    expected = load_data(data, 7).examples
    assert [e.messages for e in kept] == [e.messages for e in expected]
    assert [e.tools for e in kept] == [e.tools for e in expected]
    assert selection_ref(DataConfig(path=str(tools)), 7) == str(tools)  # a path stays a path


@pytest.mark.slow
def test_training_on_a_two_source_mix_with_tool_calls_lowers_loss(tiny_model_dir, tmp_path):
    from helpers import run_engine

    from core.events import MessageLogged, RunFinished, RunStarted, StepLogged

    config = RunConfig.load(mix_config(tmp_path, tiny_model_dir, max_length=512,
                                       default_system_prompt=""))
    _, events = run_engine(config, tmp_path / "runs")
    assert isinstance(events[-1], RunFinished), events[-1]
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.num_train_rows + started.num_val_rows == 24  # 12 + 12, nothing lost
    log = "\n".join(e.message for e in events if isinstance(e, MessageLogged))
    assert "12 used (50% of the mix; weight 0.5)" in log and "tools fallback" in log
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert steps[-1].loss < steps[0].loss


@pytest.mark.slow
def test_every_shape_and_source_trains_with_no_row_lost(tiny_model_dir, tmp_path):
    """ShareGPT function calls, v1 content parts, Alpaca history, a registry entry and a
    dataset card folder, mixed whole: every row reaches the trainer."""
    from helpers import run_engine, tiny_run_config

    from core.events import RunFinished, RunStarted

    folder = registry_dir(tmp_path)
    paths = [write_json(tmp_path / "glaive.json", glaive_rows()),
             write_jsonl(tmp_path / "v1.jsonl", v1_parts_rows()),
             write_json(tmp_path / "alpaca.json", alpaca_history_rows())]
    config = tiny_run_config(tiny_model_dir, paths[0], max_steps=2)
    config.data.max_length = 1024
    config.data.sources = [SourceConfig(str(p)) for p in paths] + [
        SourceConfig(str(folder), dataset="renamed"), SourceConfig(str(card_folder(tmp_path)))]
    _, events = run_engine(config, tmp_path / "runs")
    assert isinstance(events[-1], RunFinished), events[-1]
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.num_train_rows + started.num_val_rows == 5 + 3 + 3 + 1 + 6
