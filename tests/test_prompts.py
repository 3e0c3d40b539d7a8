"""Prompt builders: chat template for the instruct model, BOS-led few-shot text for the base model."""

import pytest

from gradsae_nn.errors import UsageError
from gradsae_nn.data.prompts import PROMPTS, SHOTS, get_template, prompt_ids

pytestmark = pytest.mark.slow


def test_chat_prompt_structure(smollm, dev_examples):
    ex = dev_examples[0]
    template = get_template(None, smollm)
    assert template.name == "chat-span-3shot"
    text = smollm.tokenizer.decode(prompt_ids(smollm, template, ex))
    assert text.count("<|im_start|>user") == 4                 # three demonstrations + the question
    assert text.count("<|im_start|>assistant") == 4
    assert all(shot.answer in text for shot in SHOTS)
    assert text.count(ex.question) == 2                        # asked before and after the context
    assert ex.context in text
    assert text.endswith("<|im_start|>assistant\n")            # generation starts the answer turn
    assert "shortest span" in text


def test_system_in_user_keeps_the_templates_own_system_prompt(smollm, dev_examples):
    """`chat-span-3shot-user` opens each user turn with the instruction; the chat template then supplies its
    default system prompt (SmolLM2's here), which `chat-span-3shot` replaces with the instruction."""
    ex = dev_examples[0]
    user = smollm.tokenizer.decode(prompt_ids(smollm, PROMPTS["chat-span-3shot-user"], ex))
    system = smollm.tokenizer.decode(prompt_ids(smollm, PROMPTS["chat-span-3shot"], ex))
    assert "You are a helpful AI assistant named SmolLM" in user and "named SmolLM" not in system
    assert user.count("shortest span") == 4 and system.count("shortest span") == 1
    assert user.count("<|im_start|>user\nAnswer the question with the shortest span") == 4


def test_chat_prompt_has_no_doubled_special_tokens(smollm, dev_examples):
    ids = prompt_ids(smollm, PROMPTS["chat-plain"], dev_examples[0])
    assert ids[0] == smollm.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids[:2] != [ids[0], ids[0]]


def test_fewshot_prompt_starts_with_bos(gemma, dev_examples):
    ex = dev_examples[0]
    template = get_template(None, gemma)
    assert template.name == "fewshot-3shot"
    ids = prompt_ids(gemma, template, ex)
    assert ids[0] == gemma.tokenizer.bos_token_id == 2
    assert ids.count(2) == 1
    text = gemma.tokenizer.decode(ids[1:])
    assert text.endswith(f"Question: {ex.question}\nAnswer:")
    assert text.count("\nAnswer: ") == 3


def test_unknown_prompt_and_style_mismatch(smollm, gemma):
    with pytest.raises(UsageError, match="known prompts"):
        get_template("nope", smollm)
    with pytest.raises(UsageError, match="needs a chat template"):
        get_template("chat-span-2shot", gemma)


def test_authors_prompt_is_their_turn_left_open(smollm, gemma, dev_examples):
    ex = dev_examples[0]
    text = smollm.tokenizer.decode(prompt_ids(smollm, get_template("authors-open-turn", smollm), ex))
    turn = (f"<|im_start|>user\nAnswer the following question based on the context.\nContext:\n{ex.context}\n\n"
            f"Question:\n{ex.question}\n\nPlease organize your final answer in this format: \"Result = [[ label ]]\"\n")
    assert text.endswith(turn)                                  # no end-of-turn, no assistant header
    assert text.startswith("<|im_start|>system\n")              # the template's default system turn stays
    assert text.count("<|im_end|>") == 1
    with pytest.raises(UsageError, match="needs a chat template"):
        get_template("authors-open-turn", gemma)               # a base model has no chat markup to put it in
