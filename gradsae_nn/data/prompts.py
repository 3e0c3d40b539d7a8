"""Prompt builders for extractive QA: chat template for instruct models, few-shot text for base models.

Prompts are named templates so results can record exactly which one produced them (`--prompt`). The
demonstrations are hand-written here, never taken from SQuAD, so no evaluation text leaks into a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import OptionError, literal
from .squad import QAExample

if TYPE_CHECKING:
    from ..models import LoadedModel


@dataclass(frozen=True)
class Shot:
    context: str
    question: str
    answer: str


SHOTS: tuple[Shot, ...] = (
    Shot("Marie Curie was born in Warsaw in 1867. She moved to Paris to study physics and mathematics at the "
         "University of Paris, where she later became the first woman to hold a professorship there.",
         "In which city was Marie Curie born?", "Warsaw"),
    Shot("The Amazon River flows through Peru, Colombia and Brazil before it empties into the Atlantic Ocean. "
         "In 2007 the Slovenian swimmer Martin Strel swam most of its length in 66 days.",
         "How long did it take Martin Strel to swim the river?", "66 days"),
    Shot("The Eiffel Tower was built by the engineering company of Gustave Eiffel and completed in 1889 as "
         "the entrance arch of the World's Fair. Critics at first called it an eyesore.",
         "What did critics first call the tower?", "an eyesore"),
)

SPAN_INSTRUCTION = ("Answer the question with the shortest span copied exactly from the context: a few words, "
                    "not a sentence.")

SHORT_REMINDER = "Answer with a few words copied from the context."

# The authors' user turn, verbatim (their experiment scripts' prompt, trailing newline included); their
# answer format "Result = [[ label ]]" goes with `--answer-format brackets`.
AUTHORS_TURN = ("Answer the following question based on the context.\nContext:\n{context}\n\nQuestion:\n{question}"
                "\n\nPlease organize your final answer in this format: \"Result = [[ label ]]\"\n")

_MARK = "\x00gradsae-user-turn\x00"


@dataclass(frozen=True)
class PromptTemplate:
    """How to turn a `QAExample` into prompt text.

    style: "chat" (messages through the tokenizer's chat template), "open-turn" (the authors' prompt: one user
        turn in the chat template's markup, left open: no end-of-turn, no assistant header) or "few-shot"
        (plain text).
    n_shots: how many `SHOTS` demonstrations precede the question.
    question_first: also state the question before the context (small models forget it otherwise).
    system: system message (chat) or instruction line (few-shot); None for none.
    reminder: a line closing every user turn (the last words before the answer weigh most for a
        small model); None for none.
    system_in_user: chat only: open every user turn with `system` instead of sending a system message, so
        the chat template's own default system prompt (Qwen's "You are Qwen, created by Alibaba Cloud...",
        SmolLM2's "You are a helpful AI assistant named SmolLM...") stays in place.
    """

    name: str
    style: str
    n_shots: int
    question_first: bool
    system: str | None
    reminder: str | None = None
    system_in_user: bool = False

    def user_turn(self, context: str, question: str) -> str:
        lead = f"{self.system}\n" if self.system_in_user and self.system else ""
        head = f"Question: {question}\n" if self.question_first else ""
        tail = f"\n{self.reminder}" if self.reminder else ""
        return f"{lead}{head}Context: {context}\nQuestion: {question}{tail}"

    def text(self, example: QAExample, tokenizer: object) -> str:
        if self.style == "open-turn":
            return open_user_turn(AUTHORS_TURN.format(context=example.context, question=example.question), tokenizer)
        shots = SHOTS[: self.n_shots]
        if self.style == "chat":
            messages = [{"role": "system", "content": self.system}] if self.system and not self.system_in_user else []
            for shot in shots:
                messages += [{"role": "user", "content": self.user_turn(shot.context, shot.question)},
                             {"role": "assistant", "content": shot.answer}]
            messages.append({"role": "user", "content": self.user_turn(example.context, example.question)})
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        blocks = [f"{self.user_turn(s.context, s.question)}\nAnswer: {s.answer}" for s in shots]
        blocks.append(f"{self.user_turn(example.context, example.question)}\nAnswer:")
        return (f"{self.system}\n\n" if self.system else "") + "\n\n".join(blocks)


def open_user_turn(content: str, tokenizer: object) -> str:
    """`content` as the one user turn of the tokenizer's chat template, left open.

    The template is rendered with a placeholder message and cut where the placeholder starts, so whatever the
    template puts before a user turn stays: Gemma's `<bos><start_of_turn>user\n` (exactly the authors' text,
    whose BOS TransformerLens prepended), SmolLM2's and Qwen's default system turn. Nothing follows `content`.
    """
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": _MARK}], tokenize=False,
                                             add_generation_prompt=False)
    return rendered[: rendered.index(_MARK)] + content


PROMPTS: dict[str, PromptTemplate] = {
    p.name: p
    for p in (
        PromptTemplate("chat-plain", "chat", 0, False, None),
        PromptTemplate("chat-span-2shot", "chat", 2, True, SPAN_INSTRUCTION),
        PromptTemplate("chat-span-3shot", "chat", 3, True, SPAN_INSTRUCTION),
        PromptTemplate("chat-span-3shot-remind", "chat", 3, True, SPAN_INSTRUCTION, SHORT_REMINDER),
        PromptTemplate("chat-span-3shot-user", "chat", 3, True, SPAN_INSTRUCTION, system_in_user=True),
        PromptTemplate("chat-span-0shot", "chat", 0, True, SPAN_INSTRUCTION),
        PromptTemplate("fewshot-2shot", "few-shot", 2, False, None),
        PromptTemplate("fewshot-3shot", "few-shot", 3, False, None),
        PromptTemplate("fewshot-span-3shot", "few-shot", 3, False, SPAN_INSTRUCTION),
        PromptTemplate("authors-open-turn", "open-turn", 0, False, None),
    )
}

# Chosen by measurement on 300 dev questions (README, "Prompts"); `--prompt` overrides.
DEFAULT_PROMPT = {"chat": "chat-span-3shot", "few-shot": "fewshot-3shot"}


def get_template(name: str | None, model: "LoadedModel") -> PromptTemplate:
    """The named template, or the model's measured default (else its prompt style's); refuses a style
    mismatch."""
    name = name or getattr(model, "default_prompt", None) or DEFAULT_PROMPT[model.prompt_style]
    if name not in PROMPTS:
        raise OptionError(f"unknown {{prompt}} {literal(name)}; known prompts: {', '.join(PROMPTS)}")
    template = PROMPTS[name]
    if template.style in ("chat", "open-turn") and not getattr(model.tokenizer, "chat_template", None):
        raise OptionError(f"{{prompt}} {name} needs a chat template but {model.name} has none; use a few-shot "
                          f"prompt ({', '.join(n for n, p in PROMPTS.items() if p.style == 'few-shot')})")
    return template


def prompt_ids(model: "LoadedModel", template: PromptTemplate, example: QAExample) -> list[int]:
    """Token ids of the prompt for `example`.

    Chat templates carry their own special tokens, so the text is encoded without adding any. Few-shot
    text gets the BOS token when the family needs it (Gemma degenerates without one).
    """
    tokenizer = model.tokenizer
    ids = tokenizer(template.text(example, tokenizer), add_special_tokens=False)["input_ids"]
    if template.style == "few-shot" and model.family.needs_bos and tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    return ids
