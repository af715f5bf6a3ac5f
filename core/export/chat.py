"""A chat template taken apart: the text around each role's message, found by rendering.

Ollama wants its own (Go) template and llama.cpp wants the end-of-turn token, while a model
ships a Jinja template. Rendering that template on marked messages shows what it writes
before and after each system, user and assistant message, which default system prompt it
adds, and what opens the assistant's answer. Templates that do more than wrap each message
(tools, dates, reformatting) are refused rather than guessed: the Jinja template still goes
into the GGUF whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ChatTemplateError(ValueError):
    """The chat template does not reduce to text around each message."""


_SYSTEM, _USER1, _ANSWER1, _USER2 = "TTSYSMARK", "TTUSERONE", "TTANSWERONE", "TTUSERTWO"


@dataclass(frozen=True)
class ChatFormat:
    """The text a chat template writes around each message."""

    start: str
    """Written first when there is no system message."""
    system_prefix: str
    """Written first, then the system message (includes ``start``)."""
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation: str
    """Opens the assistant's answer (``add_generation_prompt``)."""
    default_system: str | None
    """The system prompt the template adds when a conversation has none."""

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The prompt for ``messages`` as the chat template writes it (and the Ollama
        template of :func:`core.export.ollama.go_template` does)."""
        system = self.default_system
        if messages and messages[0]["role"] == "system":
            system, messages = messages[0]["content"], messages[1:]
        out = f"{self.system_prefix}{system}{self.system_suffix}" if system is not None else self.start
        for message in messages:
            role = message["role"]
            if role == "user":
                out += self.user_prefix + message["content"] + self.user_suffix
            elif role == "assistant":
                out += self.assistant_prefix + message["content"] + self.assistant_suffix
            else:
                raise ChatTemplateError(f"role {role!r} after the first message")
        return out + (self.generation if add_generation_prompt else "")


def _between(text: str, before: str, after: str, what: str) -> str:
    if not text.startswith(before) or not text.endswith(after) or len(text) < len(before) + len(after):
        raise ChatTemplateError(f"cannot tell the {what} apart")
    return text[len(before):len(text) - len(after)]


def chat_format(tokenizer: Any) -> ChatFormat:
    """Take ``tokenizer``'s chat template apart; :class:`ChatTemplateError` when it does more
    than wrap each message in fixed text."""

    def render(messages: list[dict[str, str]], generation: bool) -> str:
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=generation)
        except Exception as exc:  # a template raises whatever it likes
            raise ChatTemplateError(f"the template fails on a plain conversation: {exc}") from None

    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError("the tokenizer has no chat template")
    turns = [{"role": "user", "content": _USER1}, {"role": "assistant", "content": _ANSWER1},
             {"role": "user", "content": _USER2}]
    plain, prompted = render(turns, False), render(turns, True)
    generation = _between(prompted, plain, "", "generation prompt")
    at = [plain.find(mark) for mark in (_USER1, _ANSWER1, _USER2)]
    if -1 in at or at != sorted(at):
        raise ChatTemplateError("messages do not appear in order")
    end_user1, end_answer1, end_user2 = (i + len(m) for i, m in zip(at, (_USER1, _ANSWER1, _USER2)))
    user_suffix = plain[end_user2:]
    assistant_prefix = _between(plain[end_user1:at[1]], user_suffix, "", "assistant prefix")
    two = render(turns[:2], False)
    assistant_suffix = _between(two, plain[:end_answer1], "", "assistant suffix")
    user_prefix = _between(plain[end_answer1:at[2]], assistant_suffix, "", "user prefix")
    lead = _between(plain[:at[0]], "", user_prefix, "start")

    try:
        with_system = render([{"role": "system", "content": _SYSTEM}, *turns], False)
    except ChatTemplateError:
        with_system = ""
    if _SYSTEM not in with_system:  # no system role: a system prompt cannot be given
        return ChatFormat(lead, lead, "", user_prefix, user_suffix, assistant_prefix,
                          assistant_suffix, generation, None)
    at_system = with_system.index(_SYSTEM)
    system_prefix = with_system[:at_system]
    system_suffix = _between(with_system[at_system + len(_SYSTEM):], "", plain[len(lead):], "system suffix")
    default = None
    start = lead
    if lead and lead.startswith(system_prefix) and lead.endswith(system_suffix) \
            and len(lead) >= len(system_prefix) + len(system_suffix):
        default = lead[len(system_prefix):len(lead) - len(system_suffix)]
        start = ""
    found = ChatFormat(start, system_prefix, system_suffix, user_prefix, user_suffix,
                       assistant_prefix, assistant_suffix, generation, default)
    _check(found, render)
    return found


def _check(found: ChatFormat, render: Any) -> None:
    """Compare the parts with the template on conversations other than the marked one."""
    conversations = [
        [{"role": "user", "content": "Hello, who are you?"}],
        [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "a\nb"},
         {"role": "assistant", "content": "{\"ok\": true}"}, {"role": "user", "content": "more"}],
    ]
    for messages in conversations:
        for generation in (False, True):
            if found.render(messages, generation) != render(messages, generation):
                raise ChatTemplateError("the template writes more than fixed text around messages")


def special_tokens_in(text: str, tokenizer: Any) -> list[str]:
    """The special tokens of ``tokenizer`` that occur in ``text``, in order of appearance."""
    specials = set(getattr(tokenizer, "all_special_tokens", []))
    specials |= {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
                 if getattr(t, "special", False)}
    found = [(text.find(s), s) for s in specials if s and s in text]
    return [s for _, s in sorted(found)]
