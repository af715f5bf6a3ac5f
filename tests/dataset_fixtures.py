"""Datasets in the shapes users already have, written to disk for the tests (importable as
``dataset_fixtures``: tests/ is on sys.path).

Each writer makes a small file or folder in the shape other projects produce: OpenAI tool
calling, ShareGPT ``function_call``/``observation`` with a ``tools`` column (LLaMA-Factory's
glaive demo), LLaMA-Factory v1 content parts with ``loss_weight``, Alpaca with ``history``, a
``dataset_info.json`` registry, a folder ``datasets.load_dataset`` reads, preference rows and a
run config mixing two sources.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CITIES = ["Paris", "Lyon", "Oslo", "Rome", "Lima", "Kyiv", "Doha", "Baku", "Riga", "Bern",
          "Turin", "Quito"]

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Rows as JSON Lines."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def write_json(path: Path, rows: Any) -> Path:
    """Rows as one JSON document."""
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def openai_tool_rows(count: int = 12) -> list[dict[str, Any]]:
    """OpenAI tool calling: an assistant turn with ``tool_calls`` (arguments as JSON text,
    content null), the ``tool`` result, the answer; a ``tools`` column. Every third row calls
    two tools in parallel."""
    rows = []
    for i in range(count):
        city, other = CITIES[i % len(CITIES)], CITIES[(i + 5) % len(CITIES)]
        calls = [{"id": f"call_{i}a", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": city})}}]
        results = [{"role": "tool", "tool_call_id": f"call_{i}a",
                    "content": json.dumps({"city": city, "celsius": 10 + i})}]
        answer = f"It is {10 + i} degrees in {city} right now."
        if i % 3 == 2:
            calls.append({"id": f"call_{i}b", "type": "function", "function": {
                "name": "get_weather", "arguments": json.dumps({"city": other})}})
            results.append({"role": "tool", "tool_call_id": f"call_{i}b",
                            "content": json.dumps({"city": other, "celsius": 3 + i})})
            answer = f"{city} has {10 + i} degrees and {other} has {3 + i} degrees."
        rows.append({"messages": [
            {"role": "user", "content": f"What's the weather in {city}?"
                                        + (f" And in {other}?" if i % 3 == 2 else "")},
            {"role": "assistant", "content": None, "tool_calls": calls},
            *results,
            {"role": "assistant", "content": answer},
        ], "tools": [WEATHER_TOOL]})
    return rows


def glaive_rows() -> list[dict[str, Any]]:
    """ShareGPT tool calling as LLaMA-Factory's glaive demo has it: ``function_call`` and
    ``observation`` turns, the ``tools`` column as JSON text; one row without tools."""
    tools = json.dumps([{"name": "convert_currency", "description": "Convert money.",
                         "parameters": {"type": "object", "properties": {
                             "amount": {"type": "number"}, "to": {"type": "string"}}}}])
    rows = []
    for i, (amount, to) in enumerate([(100, "EUR"), (250, "JPY"), (40, "GBP"), (75, "CHF")]):
        rows.append({"conversations": [
            {"from": "human", "value": f"Convert {amount} dollars to {to}, please."},
            {"from": "function_call", "value": json.dumps(
                {"name": "convert_currency", "arguments": {"amount": amount, "to": to}})},
            {"from": "observation", "value": json.dumps({"result": amount * (i + 1) / 2})},
            {"from": "gpt", "value": f"{amount} dollars are {amount * (i + 1) / 2} {to}."},
        ], "tools": tools})
    rows.append({"conversations": [
        {"from": "human", "value": "Tell me a fun fact about owls."},
        {"from": "gpt", "value": "Owls cannot move their eyes, so they turn their heads."},
    ], "tools": "[]"})
    return rows


def v1_parts_rows() -> list[dict[str, Any]]:
    """LLaMA-Factory v1: content as lists of ``{"type": "text", "value": ...}`` parts,
    ``loss_weight`` per message, a reasoning part, a ``tool_call`` part and a ``tool`` turn."""
    def text(value: str) -> list[dict[str, str]]:
        return [{"type": "text", "value": value}]

    return [
        {"messages": [
            {"role": "system", "content": text("You are a concise tutor."), "loss_weight": 0.0},
            {"role": "user", "content": text("What is 12 times 12?"), "loss_weight": 0.0},
            {"role": "assistant", "content": [{"type": "reasoning", "value": "12*12 = 144."},
                                              {"type": "text", "value": "It is 144."}],
             "loss_weight": 1.0}]},
        {"messages": [
            {"role": "user", "content": text("Say something wrong."), "loss_weight": 0.0},
            {"role": "assistant", "content": text("The sun is cold."), "loss_weight": 0.0},
            {"role": "user", "content": text("Now say something right."), "loss_weight": 0.0},
            {"role": "assistant", "content": text("Water is wet."), "loss_weight": 1.0}]},
        {"messages": [
            {"role": "user", "content": text("Weather in Oslo?"), "loss_weight": 0.0},
            {"role": "assistant", "content": [{"type": "tool_call", "value": json.dumps(
                {"name": "get_weather", "arguments": {"city": "Oslo"}})}], "loss_weight": 1.0},
            {"role": "tool", "content": text('{"celsius": -3}'), "loss_weight": 0.0},
            {"role": "assistant", "content": text("It is minus three in Oslo."),
             "loss_weight": 1.0}],
         "tools": json.dumps([WEATHER_TOOL["function"]])},
    ]


def alpaca_history_rows() -> list[dict[str, Any]]:
    """Alpaca with ``history`` (earlier prompt/answer pairs) and a ``system`` column."""
    return [
        {"instruction": "And the capital of Italy?", "input": "", "output": "Rome is.",
         "system": "Answer with one city.",
         "history": [["What is the capital of France?", "Paris."],
                     ["And of Spain?", "Madrid."]]},
        {"instruction": "Translate to German.", "input": "good night",
         "output": "Gute Nacht.", "history": []},
        {"instruction": "Continue the count.", "input": "", "output": "Four, five, six.",
         "history": [["Count to three.", "One, two, three."]]},
    ]


def general_rows(count: int = 12) -> list[dict[str, Any]]:
    """Plain Alpaca rows: general data mixed in against forgetting."""
    facts = ["Water boils at 100 degrees Celsius at sea level.",
             "A week has seven days.", "Spiders have eight legs.",
             "The Moon orbits the Earth.", "Bees make honey from nectar.",
             "Ice floats because it is lighter than water."]
    return [{"instruction": f"State fact number {i + 1}.", "input": "",
             "output": facts[i % len(facts)] + f" (fact {i + 1})"} for i in range(count)]


def card_folder(root: Path) -> Path:
    """A folder ``datasets.load_dataset`` reads: data files and a README dataset card naming
    the train and test splits."""
    folder = root / "card-dataset"
    (folder / "data").mkdir(parents=True)
    write_jsonl(folder / "data" / "train.jsonl", openai_tool_rows(6))
    write_jsonl(folder / "data" / "test.jsonl", openai_tool_rows(2))
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
        "    path: data/train.jsonl\n  - split: test\n    path: data/test.jsonl\n---\n"
        "# Weather tool calls\n", encoding="utf-8")
    return folder


def registry_dir(root: Path) -> Path:
    """A LLaMA-Factory data directory: ``dataset_info.json`` with several entries (alpaca with
    history, glaive sharegpt with tools, OpenAI-style tags, renamed columns, a preference
    entry, a card folder, and entries tunetop cannot read)."""
    folder = root / "lf-data"
    folder.mkdir()
    write_json(folder / "alpaca_history.json", alpaca_history_rows())
    write_json(folder / "glaive_toolcall_demo.json", glaive_rows())
    write_jsonl(folder / "openai_style.jsonl", [
        {"dialog": [{"speaker": "customer", "text": "Is the shop open?"},
                    {"speaker": "agent", "text": "Yes, until eight tonight."}]}])
    write_jsonl(folder / "renamed.jsonl", [
        {"question": "Two plus two?", "answer": "Four, of course.", "sys": "Be exact."}])
    write_json(folder / "dpo_demo.json", [
        {"conversations": [{"from": "human", "value": "Greet me."}],
         "chosen": {"from": "gpt", "value": "Hello, how can I help?"},
         "rejected": {"from": "gpt", "value": "What."}}])
    card_folder(folder)
    info = {
        "alpaca_history": {"file_name": "alpaca_history.json",
                           "columns": {"prompt": "instruction", "query": "input",
                                       "response": "output", "system": "system",
                                       "history": "history"}},
        "glaive_toolcall": {"file_name": "glaive_toolcall_demo.json", "formatting": "sharegpt",
                            "columns": {"messages": "conversations", "tools": "tools"}},
        "shop_dialogs": {"file_name": "openai_style.jsonl", "formatting": "sharegpt",
                         "columns": {"messages": "dialog"},
                         "tags": {"role_tag": "speaker", "content_tag": "text",
                                  "user_tag": "customer", "assistant_tag": "agent"}},
        "renamed": {"file_name": "renamed.jsonl",
                    "columns": {"prompt": "question", "response": "answer", "system": "sys"}},
        "dpo_demo": {"file_name": "dpo_demo.json", "formatting": "sharegpt", "ranking": True,
                     "columns": {"messages": "conversations", "chosen": "chosen",
                                 "rejected": "rejected"}},
        "card": {"file_name": "card-dataset", "split": "test"},
        "modelscope_only": {"ms_hub_url": "AI-ModelScope/alpaca-gpt4-data-en"},
    }
    write_json(folder / "dataset_info.json", info)
    return folder


def preference_rows() -> list[dict[str, Any]]:
    """TRL preference rows: explicit prompt (text and turns) and implicit prompt."""
    return [
        {"prompt": "Name a colour.", "chosen": "Blue is a colour.", "rejected": "Seven."},
        {"prompt": [{"role": "user", "content": "Is ice cold?"}],
         "chosen": [{"role": "assistant", "content": "Yes, ice is cold."}],
         "rejected": [{"role": "assistant", "content": "No idea."}]},
        {"chosen": [{"role": "user", "content": "Hi!"},
                    {"role": "assistant", "content": "Hello! How can I help?"}],
         "rejected": [{"role": "user", "content": "Hi!"},
                      {"role": "assistant", "content": "Go away."}]},
    ]


def mix_config(root: Path, model_dir: Path | str, **data: Any) -> Path:
    """A run config mixing the OpenAI tool-calling rows with general Alpaca rows, half each."""
    from helpers import tiny_run_config

    from core.config import SourceConfig

    tools = write_jsonl(root / "tools.jsonl", openai_tool_rows(12))
    general = write_json(root / "general.json", general_rows(12))
    cfg = tiny_run_config(model_dir, tools)
    cfg.data.sources = [SourceConfig(str(tools), weight=0.5),
                        SourceConfig(str(general), weight=0.5)]
    for name, value in data.items():
        setattr(cfg.data, name, value)
    path = root / "mix.yaml"
    cfg.save(path)
    return path
