"""Normalising rows: one raw row of a known format to an :class:`Example` and its problems.

Every format becomes chat ``messages`` or plain ``text``. Chat turns are system, user,
assistant and tool turns; an assistant turn may call tools (``tool_calls``), think first
(``reasoning_content``) or be masked from the loss (``train: False``, from a ``weight`` or
``loss_weight`` of 0). Preference rows (prompt, chosen, rejected) become a
:class:`Preference`. A row with an error becomes ``None`` and the problems say what and where;
warnings keep the row. Nothing here raises for bad data.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from core.config import DATA_FORMATS
from core.data.formats import FIELD_HINTS, FORMAT_TESTS
from core.data.problems import Problem

ROLE_ALIASES = {
    **dict.fromkeys(("system", "developer"), "system"),
    **dict.fromkeys(("user", "human", "prompter"), "user"),
    **dict.fromkeys(
        ("assistant", "gpt", "chatgpt", "gpt-4", "gpt4", "bing", "bard", "model", "bot", "ai",
         "claude", "gemini"),
        "assistant",
    ),
}
"""Role names found in OpenAI, ShareGPT and OASST-style data, lower-cased, to the chat role."""

TOOL_ROLES = ("tool", "function", "function_response", "observation", "ipython",
              "tool_response")
"""Roles of a tool's result (OpenAI ``tool``/``function``, ShareGPT ``observation``): read as
role ``tool``, never trained."""

CALL_ROLES = ("function_call", "tool_call", "tool_calls")
"""ShareGPT roles of an assistant turn whose value is a tool call as JSON."""

NON_TEXT_PARTS = ("image", "image_url", "input_image", "audio", "input_audio", "audio_url",
                  "video", "video_url", "file", "input_file")
"""Content part types tunetop cannot train on (it fine-tunes text models)."""

NON_TEXT_COLUMNS = ("images", "videos", "audios")
"""Row columns holding media (LLaMA-Factory multimodal rows)."""


@dataclass
class Example:
    """One normalised row: chat ``messages`` or plain ``text``, and the ``line`` it came from
    (the JSONL line, or the row number in other formats)."""

    line: int
    messages: list[dict[str, Any]] | None = None
    """``[{"role": "system"|"user"|"assistant"|"tool", "content": str}, ...]``; where present,
    ``tool_calls`` (assistant: ``[{"type": "function", "function": {"name": str, "arguments":
    dict}}]``), ``name`` and ``tool_call_id`` (tool results), ``reasoning_content`` (the
    assistant's thinking) and ``train: False`` (an assistant turn masked from the loss)."""
    text: str | None = None
    """Plain text, trained on every token."""
    tools: list[dict[str, Any]] | None = None
    """Tool definitions the conversation may call: ``[{"type": "function", "function": {"name",
    "description", "parameters"}}]``."""
    source: str = ""
    """The source the row came from when several are mixed; empty for a single source."""

    def answers(self) -> list[str]:
        """The trained assistant answers (not tool calls), or the text for a text row."""
        if self.messages is None:
            return [self.text or ""]
        return [m["content"] for m in self.messages if m["role"] == "assistant"
                and m.get("train", True) and not m.get("tool_calls")]

    def dedupe_text(self) -> str:
        """The row's words without system turns, which many rows share, for duplicate checks."""
        if self.messages is None:
            return self.text or ""
        return "\n".join(f"{m['role']}: {m['content']}" + (
            f" {json.dumps(m['tool_calls'], sort_keys=True)}" if m.get("tool_calls") else "")
            for m in self.messages if m["role"] != "system")


@dataclass
class Preference:
    """One preference row: a prompt and a chosen and a rejected continuation, as chat turns.

    For preference training (DPO/ORPO); supervised fine-tuning can use ``prompt + chosen``
    (format ``chosen``).
    """

    line: int
    prompt: list[dict[str, Any]]
    """The conversation so far, ending where the two answers part."""
    chosen: list[dict[str, Any]]
    """The preferred continuation (assistant turns, possibly with tool calls and results)."""
    rejected: list[dict[str, Any]]
    """The dispreferred continuation."""
    tools: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Tags:
    """How a source names the fields and roles of its turns (LLaMA-Factory ``tags``)."""

    role_key: str | None = None
    """Key of a turn's role; ``None`` reads ``role`` or ``from``."""
    content_key: str | None = None
    """Key of a turn's content; ``None`` reads ``content`` or ``value``."""
    roles: tuple[tuple[str, str], ...] = ()
    """Role names of this source (lower case) and what they are: ``system``, ``user``,
    ``assistant``, ``tool`` (a result) or ``call`` (a tool call)."""


@dataclass(frozen=True)
class RowShape:
    """How one source's rows map onto its format: renamed columns and turn tags."""

    columns: tuple[tuple[str, str], ...] = ()
    """``(field tunetop reads, the source's column)`` pairs, e.g. ``("output", "response")``."""
    tags: Tags = field(default_factory=Tags)

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with its columns renamed to the fields tunetop reads."""
        renames = [(ours, theirs) for ours, theirs in self.columns if ours != theirs]
        if not renames:
            return row
        out = dict(row)
        for _, theirs in renames:
            out.pop(theirs, None)
        for ours, theirs in renames:
            if theirs in row:
                out[ours] = row[theirs]
        return out


def _kind(value: Any) -> str:
    kind = type(value).__name__
    return "null (no value)" if value is None else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


class _RowChecker:
    """Collects the problems of one row while it is normalised."""

    def __init__(self, source: str, line: int, tags: Tags) -> None:
        self.source = source
        self.line = line
        self.tags = tags
        self.problems: list[Problem] = []
        self.tools: list[dict[str, Any]] | None = None
        """Tool definitions met in the row (a ``tools`` column or content part)."""

    def error(self, field_name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.source, self.line, field_name, message, fix))

    def warn(self, field_name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.source, self.line, field_name, message, fix, "warning"))

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def is_object(self, row: Any) -> bool:
        """Whether the row is an object with fields; report it when it is not."""
        if isinstance(row, dict):
            return True
        self.error("(row)", f"the row is a {type(row).__name__}, not an object with fields.",
                   "Write each row as a JSON object.")
        return False

    def require(self, row: dict[str, Any], key: str, fmt: str) -> bool:
        """Report a missing field as a wrong field name, with the closest name present."""
        if key in row:
            return True
        present = [str(k) for k in row]
        other = next((name for name, _, test in FORMAT_TESTS if name != fmt and test(row)), None)
        close = ([k for k in present if FIELD_HINTS.get(k.lower()) == key]
                 or difflib.get_close_matches(key, present, n=1, cutoff=0.6))
        if other:
            fix = (f"Keep one format in a file: convert the row to {fmt}, or move the {other} "
                   "rows to a file of their own.")
        elif close:
            fix = f"Rename '{close[0]}' to '{key}'."
        else:
            fix = f"Give every row a '{key}' field, or set data.format to match the file."
        looks = f"; it is in {other} format" if other else ""
        self.error(key, f"wrong field names: no '{key}' field for format {fmt} "
                        f"(the row has {', '.join(present) or 'no fields'}{looks}).", fix)
        return False

    def string(self, value: Any, name: str, *, optional: bool = False) -> str | None:
        """A non-empty string field, or ``None`` with the problem reported."""
        if value is None and optional:
            return ""
        if not isinstance(value, str):
            self.error(name, f"non-string content: expected text, got {_kind(value)}.",
                       "Write the content as a JSON string.")
            return None
        if not value.strip() and not optional:
            self.error(name, "empty content.", "Write the text, or remove the row.")
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone \ud800-style JSON escape; tokenizers reject it
            self.error(name, f"invalid Unicode: unpaired surrogate {value[exc.start]!r} at "
                             f"character {exc.start}.",
                       "Fix the \\uXXXX escape; surrogates must come in pairs.")
            return None
        return value

    def json_value(self, value: Any, name: str, what: str) -> Any:
        """``value``, or the JSON it holds when it is text (CSV cells, LLaMA-Factory columns)."""
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            self.error(name, f"is text that is not JSON {what}.", f"Store it as JSON {what}.")
            return None

    # --- turns ----------------------------------------------------------------------------

    def turns(self, value: Any, name: str) -> list[dict[str, Any]] | None:
        """Normalise a list of turns (role/content, ShareGPT from/value, or the source's tags)."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                self.error(name, "is text that is not a JSON list of turns.",
                           "Store the turns as a JSON list.")
                return None
        if not isinstance(value, list):
            self.error(name, f"must be a list of turns, got {type(value).__name__}.",
                       "Store the turns as a list of {role, content} objects.")
            return None
        if not value:
            self.error(name, "has no turns.", "Add user and assistant turns, or remove the row.")
            return None
        out: list[dict[str, Any]] = []
        for i, turn in enumerate(value):
            message = self.turn(turn, f"{name}[{i}]")
            if message is not None:
                out.append(message)
        return out if self.ok else None

    def turn(self, turn: Any, where: str) -> dict[str, Any] | None:
        """One turn as a message, or ``None`` with its problems reported."""
        if not isinstance(turn, dict):
            self.error(where, f"turn is a {type(turn).__name__}, not an object.",
                       "Write each turn as {\"role\": ..., \"content\": ...}.")
            return None
        tags = self.tags
        role_key = tags.role_key or ("role" if "role" in turn else "from" if "from" in turn
                                     else None)
        content_key = tags.content_key or ("content" if "content" in turn else
                                           "value" if "value" in turn else None)
        calls_given = bool(turn.get("tool_calls") or turn.get("function_call"))
        if role_key not in turn or (content_key not in turn and not calls_given):
            expected = (f"'{tags.role_key or 'role'}' and '{tags.content_key or 'content'}'"
                        if tags.role_key or tags.content_key else
                        "'role' and 'content' (or ShareGPT 'from' and 'value')")
            self.error(where, f"wrong field names: the turn has "
                              f"{', '.join(map(str, turn)) or 'no fields'}.",
                       f"Name the fields {expected}.")
            return None
        role = self._role(turn[role_key], f"{where}.{role_key}")
        if role is None:
            return None
        content = turn.get(content_key) if content_key else None
        name = f"{where}.{content_key or 'content'}"
        message: dict[str, Any] = {"role": "assistant" if role == "call" else role}
        if role == "call":  # ShareGPT function_call: the value is the call itself
            calls = self._calls(content, name)
            if calls is None:
                return None
            message["content"], message["tool_calls"] = "", calls
        else:
            if role == "assistant" and calls_given:
                raw_calls = turn.get("tool_calls") or [turn["function_call"]]
                calls = self._calls(raw_calls, f"{where}.tool_calls")
                if calls is None:
                    return None
                message["tool_calls"] = calls
            text = self._content(content, name, message, role)
            if text is None:
                return None
            message["content"] = text
        if role == "tool":
            for key in ("name", "tool_call_id"):
                if isinstance(turn.get(key), str) and turn[key]:
                    message[key] = turn[key]
        thinking = next((turn[k] for k in ("reasoning_content", "reasoning", "thinking")
                         if isinstance(turn.get(k), str) and turn[k].strip()), None)
        if thinking is not None and message["role"] == "assistant":
            message["reasoning_content"] = thinking
        for key in ("loss_weight", "weight"):
            if turn.get(key) is not None:
                self._weight(turn[key], f"{where}.{key}", message)
                break
        return message

    def _role(self, value: Any, name: str) -> str | None:
        """``system``, ``user``, ``assistant``, ``tool`` or ``call``; ``None`` when unknown."""
        key = value.strip().lower() if isinstance(value, str) else None
        role = None
        if key is not None:
            role = (dict(self.tags.roles).get(key) or ROLE_ALIASES.get(key)
                    or ("tool" if key in TOOL_ROLES else "call" if key in CALL_ROLES else None))
        if role is None:
            self.error(name, f"unknown role {value!r}.",
                       "Use system, user, assistant or tool (ShareGPT: system, human, gpt, "
                       "function_call, observation), or map the source's role names with "
                       "tags in dataset_info.json.")
        return role

    def _content(self, value: Any, name: str, message: dict[str, Any], role: str) -> str | None:
        """A turn's text: a string or a list of content parts (whose reasoning, tool calls and
        tool definitions go to ``message`` and the row); ``None`` with the problem reported."""
        has_calls = bool(message.get("tool_calls"))
        if isinstance(value, list):
            text = self._parts(value, name, message)
            if text is None:
                return None
            if not text.strip() and not message.get("tool_calls"):
                self.error(name, "empty content: the turn has no text.",
                           "Write the text, or remove the row.")
                return None
            return text
        if role == "tool" and isinstance(value, (dict, list, int, float, bool)):
            return json.dumps(value, ensure_ascii=False)  # a structured tool result
        return self.string(value, name, optional=has_calls or role == "tool")

    def _parts(self, parts: list[Any], name: str, message: dict[str, Any]) -> str | None:
        """Join a list of content parts: text (``text`` or ``value``), reasoning, tool calls
        and tool definitions; media parts are an error (text models only)."""
        texts: list[str] = []
        reasoning: list[str] = []
        for i, part in enumerate(parts):
            where = f"{name}[{i}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                self.error(where, f"content part is {_kind(part)}, not an object with a "
                                  "'type'.", "Write parts as {\"type\": \"text\", \"text\": ...}.")
                return None
            kind = part["type"].lower()
            body = next((part[k] for k in ("text", "value", "content") if k in part), None)
            if kind in NON_TEXT_PARTS:
                self.error(where, f"non-text content ({kind}): tunetop fine-tunes text models "
                                  "and cannot train on images, audio or video.",
                           "Remove the media parts from the row, or drop the row.")
                return None
            if kind in ("text", "input_text", "output_text"):
                text = self.string(body, f"{where}.text", optional=True)
                if text is None:
                    return None
                texts.append(text)
            elif kind in ("reasoning", "thinking"):
                text = self.string(body if body is not None else part.get("thinking"),
                                   f"{where}.text", optional=True)
                if text is None:
                    return None
                reasoning.append(text)
            elif kind in ("tool_call", "tool_calls", "function_call"):
                calls = self._calls(body, f"{where}.value")
                if calls is None:
                    return None
                message.setdefault("tool_calls", []).extend(calls)
            elif kind == "tools":
                if not self.read_tools(body, f"{where}.value"):
                    return None
            else:
                self.error(where, f"unknown content part type '{part['type']}'.",
                           "Use text, reasoning or tool_call parts.")
                return None
        if reasoning and "\n".join(reasoning).strip():
            message["reasoning_content"] = "\n".join(reasoning)
        return "\n".join(texts)

    def _calls(self, value: Any, name: str) -> list[dict[str, Any]] | None:
        """Tool calls as ``[{"type": "function", "function": {"name", "arguments": dict}}]``
        from OpenAI ``tool_calls``, a ShareGPT ``function_call`` value (JSON text of one call
        or a list) or a ``tool_call`` content part."""
        value = self.json_value(value, name, "for a tool call ({\"name\": ..., \"arguments\": "
                                             "{...}})")
        if value is None and not self.ok:
            return None
        calls = value if isinstance(value, list) else [value]
        out = []
        for i, call in enumerate(calls):
            where = f"{name}[{i}]" if isinstance(value, list) else name
            function = call.get("function") if isinstance(call, dict) else None
            body = function if isinstance(function, dict) else call
            if not isinstance(body, dict) or not isinstance(body.get("name"), str) \
                    or not body["name"].strip():
                self.error(where, f"tool call without a function name (got {_kind(call)}).",
                           "Write each call as {\"name\": ..., \"arguments\": {...}}.")
                return None
            arguments = body.get("arguments", body.get("parameters", {}))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments.strip() else {}
                except (ValueError, RecursionError):
                    self.error(where, f"the arguments of tool call '{body['name']}' are not "
                                      "valid JSON.", "Write the arguments as a JSON object.")
                    return None
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                self.error(where, f"the arguments of tool call '{body['name']}' are "
                                  f"{_kind(arguments)}, not an object.",
                           "Write the arguments as a JSON object of parameter names.")
                return None
            entry: dict[str, Any] = {"type": "function",
                                     "function": {"name": body["name"], "arguments": arguments}}
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                entry["id"] = call["id"]
            out.append(entry)
        if not out:
            self.error(name, "an empty list of tool calls.", "Give the call, or remove the turn.")
            return None
        return out

    def read_tools(self, value: Any, name: str) -> bool:
        """Read tool definitions (a list, or JSON text of one) into :attr:`tools`; ``False``
        with the problem reported when they cannot be read."""
        if value is None or (isinstance(value, (str, list)) and not value) or value == "[]":
            return True
        value = self.json_value(value, name, "list of tool definitions")
        if value is None:
            return self.ok
        items = value if isinstance(value, list) else [value]
        tools = []
        for i, tool in enumerate(items):
            if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
                tools.append({**tool, "type": tool.get("type", "function")})
            elif isinstance(tool, dict) and isinstance(tool.get("name"), str):
                tools.append({"type": "function", "function": tool})
            else:
                self.error(f"{name}[{i}]", f"tool definition is {_kind(tool)} without a name.",
                           "Write each tool as {\"name\": ..., \"description\": ..., "
                           "\"parameters\": {...}} (or OpenAI {\"type\": \"function\", "
                           "\"function\": {...}}).")
                return False
        self.tools = (self.tools or []) + tools
        return True

    def _weight(self, value: Any, name: str, message: dict[str, Any]) -> None:
        """``weight``/``loss_weight``: 0 masks an assistant turn from the loss."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            self.error(name, f"the weight must be 0 (masked) or 1 (trained), got {value!r}.",
                       "Write 0 to leave the turn out of the loss, 1 to train it.")
            return
        if message["role"] != "assistant":
            return  # only assistant turns are trained; a prompt's weight changes nothing
        if value == 0:
            message["train"] = False
        elif value != 1:
            self.warn(name, f"weight {value:g} is trained as 1: a turn is trained or masked.",
                      "Use 0 to mask the turn, 1 to train it.")

    def order(self, turns: list[dict[str, Any]], name: str) -> None:
        """Check the turn sequence: an optional first system turn, then user and assistant
        alternating; an assistant turn with tool calls is followed by their results (tool
        turns), then the assistant again."""
        roles = [t["role"] for t in turns]
        if all(r == "system" for r in roles):
            self.error(name, "system-only row: it has no user or assistant turn.",
                       "Add the user and assistant turns, or remove the row.")
            return
        if "assistant" not in roles:
            self.error(name, "missing assistant turn: there is nothing to learn from this row.",
                       "Add the assistant's answer, or remove the row.")
            return
        previous = None
        for i, (role, turn) in enumerate(zip(roles, turns)):
            if role == "system" and i == 0:
                continue
            calls = previous == "assistant" and bool(turns[i - 1].get("tool_calls"))
            allowed = (("tool",) if calls else ("user",) if previous == "assistant" else
                       ("tool", "assistant") if previous == "tool" else
                       ("assistant",) if previous == "user" else ("user",))
            if role not in allowed:
                after = f"after '{roles[i - 1]}'" if i else "first"
                if calls:
                    why = "a tool call must be followed by its result (a tool turn)"
                elif role == "tool":
                    why = "a tool result must follow the assistant's tool call"
                else:
                    why = ("turns must alternate user, assistant after an optional first system "
                           "turn")
                self.error(f"{name}[{i}]", f"roles out of order: turn {i + 1} is '{role}' "
                                           f"{after}; {why}.",
                           "Merge or reorder the turns so user and assistant alternate (tool "
                           "results right after the call).")
                return
            previous = role
        if roles[-1] in ("user", "tool"):
            self.warn(name, f"the last turn is a {roles[-1]} turn with no answer; it is not "
                            "trained.", "Add the assistant's answer or remove the last turn.")
        if not any(t["role"] == "assistant" and t.get("train", True) for t in turns):
            self.warn(name, "every assistant turn has weight 0: nothing in this row is trained.",
                      "Give one assistant turn weight 1, or remove the row.")

    # --- columns beside the turns ---------------------------------------------------------

    def extras(self, row: dict[str, Any], turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Read the row's ``tools`` and ``system`` columns and refuse media columns; returns
        the turns with the system column prepended."""
        for column in NON_TEXT_COLUMNS:
            if row.get(column):
                self.error(column, f"the row has {column}: tunetop fine-tunes text models and "
                                   "cannot train on media.",
                           f"Remove the {column} (or the row), or use a vision-language "
                           "fine-tuning tool.")
        if "tools" in row:
            self.read_tools(row["tools"], "tools")
        system = row.get("system")
        if isinstance(system, str) and system.strip():
            if turns and turns[0]["role"] == "system":
                self.warn("system", "the row has a system column and a system turn; the turn "
                                    "is used.", "Keep one of the two.")
            else:
                turns = [{"role": "system", "content": system}, *turns]
        elif system is not None and not isinstance(system, str):
            self.string(system, "system")
        return turns

    def history(self, value: Any) -> list[dict[str, Any]]:
        """Alpaca ``history``: earlier ``[prompt, answer]`` pairs as turns."""
        value = self.json_value(value, "history", "list of [prompt, answer] pairs")
        if value is None:
            return []
        if not isinstance(value, list):
            self.error("history", f"must be a list of [prompt, answer] pairs, got "
                                  f"{_kind(value)}.", "Write [[\"question\", \"answer\"], ...].")
            return []
        out = []
        for i, pair in enumerate(value):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                self.error(f"history[{i}]", f"is {_kind(pair)}, not a [prompt, answer] pair.",
                           "Write each earlier turn as [\"question\", \"answer\"].")
                return []
            prompt = self.string(pair[0], f"history[{i}][0]")
            answer = self.string(pair[1], f"history[{i}][1]")
            if prompt is not None and answer is not None:
                out += [{"role": "user", "content": prompt},
                        {"role": "assistant", "content": answer}]
        return out


def normalise_row(row: Any, format: str, source: str = "", line: int = 0,
                  shape: RowShape | None = None) -> tuple[Example | None, list[Problem]]:
    """Turn one raw row of ``format`` into an :class:`Example`.

    ``shape`` renames the source's columns and names its roles (a registry entry's
    ``columns`` and ``tags``). Returns ``(None, problems)`` when the row has an error (it must
    be dropped), else the example and any warnings. Never raises for bad data.
    """
    shape = shape or RowShape()
    check = _RowChecker(source, line, shape.tags)
    if not check.is_object(row):
        return None, check.problems
    if None in row:  # csv.DictReader keeps surplus cells under the key None
        check.error("(row)", "the row has more cells than the header.",
                    "Quote cells that contain the delimiter.")
        return None, check.problems
    row = shape.apply(row)
    example = Example(line)
    turns: list[dict[str, Any]] | None = None
    if format == "text":
        if check.require(row, "text", format):
            example.text = check.string(row["text"], "text")
    elif format in ("messages", "sharegpt"):
        key = "messages" if format == "messages" else "conversations"
        if check.require(row, key, format):
            turns = check.turns(row[key], key)
    elif format == "alpaca":
        # "&", not "and", below and for prompt_completion: every missing field is reported
        if check.require(row, "instruction", format) & check.require(row, "output", format):
            instruction = check.string(row["instruction"], "instruction")
            extra = check.string(row.get("input"), "input", optional=True)
            output = check.string(row["output"], "output")
            earlier = check.history(row["history"]) if row.get("history") else []
            if check.ok:
                prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
                turns = [*earlier, {"role": "user", "content": prompt},
                         {"role": "assistant", "content": output}]
    elif format == "prompt_completion":
        if check.require(row, "prompt", format) & check.require(row, "completion", format):
            turns = (_side(check, row["prompt"], "prompt", "user")
                     + _side(check, row["completion"], "completion", "assistant"))
            turns = turns if check.ok else None
    elif format in ("preference", "chosen"):
        preference = _preference(check, row)
        if preference is not None:
            turns = preference.prompt + preference.chosen
    else:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(DATA_FORMATS[1:])}")
    if turns is not None:
        turns = check.extras(row, turns)
        if check.ok:
            check.order(turns, "prompt+completion" if format == "prompt_completion" else
                        {"messages": "messages", "sharegpt": "conversations"}.get(format, format))
            example.messages = turns
            example.tools = check.tools
    return (example if check.ok else None), check.problems


def normalise_preference(row: Any, source: str = "", line: int = 0,
                         shape: RowShape | None = None) -> tuple[Preference | None, list[Problem]]:
    """Turn one preference row into a :class:`Preference`.

    Reads TRL rows (``prompt`` with ``chosen``/``rejected`` as text or turns, or ``chosen``
    and ``rejected`` whole conversations sharing their start), LLaMA-Factory ShareGPT rows
    (``conversations`` with one ``chosen`` and one ``rejected`` turn) and Alpaca rows
    (``instruction``/``input`` with ``chosen``/``rejected`` text).
    """
    shape = shape or RowShape()
    check = _RowChecker(source, line, shape.tags)
    if not check.is_object(row):
        return None, check.problems
    return _preference(check, shape.apply(row)), check.problems


def _preference(check: _RowChecker, row: dict[str, Any]) -> Preference | None:
    if not (check.require(row, "chosen", "preference")
            & check.require(row, "rejected", "preference")):
        return None
    chosen = _answer(check, row["chosen"], "chosen")
    rejected = _answer(check, row["rejected"], "rejected")
    if "prompt" in row:
        prompt = _side(check, row["prompt"], "prompt", "user")
    elif "conversations" in row or "messages" in row:
        key = "conversations" if "conversations" in row else "messages"
        prompt = check.turns(row[key], key) or []
    elif "instruction" in row:
        instruction = check.string(row["instruction"], "instruction")
        extra = check.string(row.get("input"), "input", optional=True)
        prompt = ([{"role": "user", "content": f"{instruction}\n\n{extra}" if extra.strip()
                    else instruction}] if instruction is not None else [])
    else:  # implicit prompt: both are whole conversations, the prompt is what they share
        shared = 0
        while (shared < min(len(chosen), len(rejected)) - 1
               and chosen[shared] == rejected[shared]):
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if not check.ok:
        return None
    prompt = check.extras(row, prompt)
    if not any(m["role"] == "user" for m in prompt):
        check.error("prompt", "the preference row has no user turn before the answers.",
                    "Give a 'prompt' (text or turns) with the user's request.")
    for name, side in (("chosen", chosen), ("rejected", rejected)):
        if not any(m["role"] == "assistant" for m in side):
            check.error(name, f"the {name} side has no assistant answer.",
                        f"Give the {name} answer as text or as assistant turns.")
    if not check.ok:
        return None
    return Preference(check.line, prompt, chosen, rejected, check.tools)


def _answer(check: _RowChecker, value: Any, name: str) -> list[dict[str, Any]]:
    """One side of a preference: text, one turn (LLaMA-Factory ShareGPT) or a list of turns."""
    if isinstance(value, dict):
        message = check.turn(value, name)
        return [message] if message is not None else []
    return _side(check, value, name, "assistant")


def _side(check: _RowChecker, value: Any, name: str, role: str) -> list[dict[str, Any]]:
    """One side of a prompt/completion row: a string, or a list of turns (TRL conversational)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:  # a CSV cell holding turns as JSON; otherwise it is prose that starts with "["
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, list) and parsed and all(isinstance(t, dict) for t in parsed):
            value = parsed
    if isinstance(value, list):
        return check.turns(value, name) or []
    text = check.string(value, name)
    return [{"role": role, "content": text}] if text is not None else []
