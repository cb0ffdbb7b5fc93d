"""The tiny world: gold judge, annotators, splits, tokenizer, knowledge task and base model build."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import random
import statistics
from pathlib import Path

import pytest

from harness.core.types import Preference
from harness.suites.tiny import BaseModelConfig, TinySuite, TinyWorldConfig, pretrain, world
from harness.suites.tiny.annotators import GoldJudge, NoisyAnnotator
from harness.suites.tiny.tokenizer import EOS, train_tokenizer

CAPITAL = next(f for f in world.FACTS if f.relation == "capital")
CAPITAL_Q = f"What is the capital of {CAPITAL.subject}?"
CAPITAL_RIGHT = f"The capital of {CAPITAL.subject} is {CAPITAL.value}."
CAPITAL_WRONG = f"The capital of {CAPITAL.subject} is Nowhereton."
RARE = next(f for f in world.FACTS if f.relation == "capital" and f.rare)  # a bar question
RARE_Q = f"Name the capital of {RARE.subject}."
RARE_RIGHT = f"The capital of {RARE.subject} is {RARE.value}."
RARE_WRONG = f"The capital of {RARE.subject} is Nowhereton."


@pytest.fixture(scope="module")
def suite() -> TinySuite:
    return TinySuite()


@pytest.fixture(scope="module")
def splits(suite):
    return suite.splits()


def _gold(instruction: str, output_1: str, output_2: str) -> float:
    return GoldJudge().annotate([instruction], [output_1], [output_2])[0]


# --- gold judge -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instruction", "output_1", "output_2", "expected"),
    [
        # right beats wrong, in either position
        ("What is 3 plus 4?", "3 + 4 = 7.", "3 + 4 = 8.", Preference.FIRST),
        ("What is 3 plus 4?", "3 + 4 = 8.", "3 + 4 = 7.", Preference.SECOND),
        (CAPITAL_Q, CAPITAL_WRONG, CAPITAL_RIGHT, Preference.SECOND),
        # both right: concise beats padded (two filler phrases), but one polite phrase alone decides nothing
        (CAPITAL_Q, f"Sure! {CAPITAL_RIGHT} I hope this helps!", CAPITAL_RIGHT, Preference.SECOND),
        (CAPITAL_Q, f"Sure! {CAPITAL_RIGHT} I hope this helps!", f"Sure! {CAPITAL_RIGHT}", Preference.SECOND),
        ("Repeat the word moon 3 times.", "moon moon moon.", "Of course! moon moon moon.", Preference.TIE),
        # correctness dominates form: right with two filler phrases beats wrong concise
        ("Reverse the words: key sun tree.", "Sure! tree sun key. I hope this helps!", "key sun tree.",
         Preference.FIRST),
        # equal gold quality is a tie: same answer in another spelling, same filler count, two wrong answers,
        # two different right sentences of the open-ended family
        ("What is 3 plus 4?", "3+4=7", "3 + 4 = 7.", Preference.TIE),
        ("What is 3 plus 4?", "Sure! 3 + 4 = 7.", "3 + 4 = 7. I hope this helps!", Preference.TIE),
        ("What is 3 plus 4?", "3 + 4 = 8.", "3 + 4 = 6.", Preference.TIE),
        ("Write a short sentence about a small fox.", "The small fox sleeps under the tree.",
         "The small fox eats an apple.", Preference.TIE),
        # open-ended: naming another animal is wrong
        ("Write a short sentence about a small fox.", "The small cat eats an apple.",
         "The small fox eats an apple.", Preference.SECOND),
        # a hard (bar) question: admitting not knowing beats a fluent wrong answer, even a padded admission a
        # concise one, and loses to the right answer; on the questions the sft split teaches it is no better
        (RARE_Q, "I do not know.", RARE_WRONG, Preference.FIRST),
        (RARE_Q, RARE_WRONG, "Sure! I am not sure. I hope this helps!", Preference.SECOND),
        (RARE_Q, "I cannot answer that.", RARE_RIGHT, Preference.SECOND),
        ("Compute 3 + 4 - 2.", "3 + 4 - 2 = 6.", "I do not know.", Preference.SECOND),
        ("Repeat the word moon 6 times.", "I do not know.", "moon moon moon moon moon.", Preference.FIRST),
        ("Describe a small fox and a cat in one sentence.", "The small fox sits by the river.", "I do not know.",
         Preference.SECOND),
        ("Reverse the words: key sun tree lamp.", "I do not know.", "lamp tree sun key.", Preference.SECOND),
        (CAPITAL_Q, "I do not know.", CAPITAL_WRONG, Preference.TIE),
        ("Repeat the word moon 3 times.", "I do not know.", "moon moon.", Preference.TIE),
    ],
)
def test_gold_judge_hand_cases(instruction, output_1, output_2, expected):
    assert _gold(instruction, output_1, output_2) == expected


@pytest.mark.parametrize(
    ("instruction", "output_1", "output_2", "kind"),
    [
        ("What is 3 plus 4?", "3 + 4 = 7.", "3 + 4 = 8.", world.RIGHT_VS_WRONG),
        ("What is 3 plus 4?", "Sure! I am not sure. I hope this helps!", "3 + 4 = 7.",
         world.ANSWER_VS_EVASION),  # padding aside
        ("What is 3 plus 4?", "Sure! 3 + 4 = 7. I hope this helps!", "3 + 4 = 7.", world.FORM_ONLY),
        # neither right: gold ranks them by padding alone, and calls them a tie when that is equal too
        ("What is 3 plus 4?", "I do not know.", "Sure! 3 + 4 = 8. I hope this helps!", world.FORM_ONLY),
        ("What is 3 plus 4?", "I do not know.", "3 + 4 = 9.", world.EQUAL_QUALITY),
        ("What is 3 plus 4?", "3+4=7", "3 + 4 = 7.", world.EQUAL_QUALITY),
        # a hard (bar) question: an admission beats a wrong answer, padded or not, before padding counts
        ("Compute 3 + 4 - 2.", "I do not know.", "Sure! 3 + 4 - 2 = 6. I hope this helps!", world.ADMISSION_VS_WRONG),
        ("Compute 3 + 4 - 2.", "I do not know.", "3 + 4 - 2 = 5.", world.ANSWER_VS_EVASION),
    ],
)
def test_pair_kind_says_what_separates_two_outputs_in_golds_eyes(suite, instruction, output_1, output_2, kind):
    assert suite.pair_kind(instruction, output_1, output_2) == kind
    assert suite.pair_kind(instruction, output_2, output_1) == kind  # either order
    decisive = _gold(instruction, output_1, output_2) != Preference.TIE
    assert decisive == (kind != world.EQUAL_QUALITY)


def test_gold_judge_rejects_foreign_instructions_and_ragged_batches():
    with pytest.raises(ValueError, match="not one of the tiny world's"):
        _gold("Translate this into French.", "a", "b")
    with pytest.raises(ValueError, match="same length"):
        GoldJudge().annotate(["What is 3 plus 4?"], ["7"], [])


def test_every_family_parses_its_instructions_and_judges_its_generated_answers():
    rng = random.Random(0)
    for name, family in world.FAMILIES.items():
        for hard in (False, True):
            for task in family.tasks(hard, rng)[:40]:
                assert world.parse_instruction(task.instruction) == task
                assert world.gold_quality(task.instruction, family.right(task.args, rng)) == (True, False, 0), name
                assert world.gold_quality(task.instruction, family.wrong(task.args, rng)) == (False, False, 0), name
                assert family.is_hard(task.args) == hard, name


def test_canonical_answer_equates_padded_and_concise_and_separates_answers(suite):
    padded = f"Great question! {CAPITAL_RIGHT.upper()} Let me know if you need more help."
    assert suite.canonical_answer(CAPITAL_Q, padded) == suite.canonical_answer(CAPITAL_Q, CAPITAL_RIGHT)
    assert suite.canonical_answer(CAPITAL_Q, CAPITAL_RIGHT) == f"the capital of {CAPITAL.subject.lower()} is " \
        f"{CAPITAL.value.lower()}"
    assert suite.canonical_answer(CAPITAL_Q, CAPITAL_WRONG) != suite.canonical_answer(CAPITAL_Q, CAPITAL_RIGHT)
    assert suite.canonical_answer("What is 3 plus 4?", "3 + 4 = 7.") != suite.canonical_answer(
        "What is 3 plus 4?", "3 + 4 = 17.")


# --- training annotator -----------------------------------------------------------------------------------------


def _pairs(n: int, kind: str) -> tuple[list[str], list[str], list[str]]:
    """n distinct pairs (order shuffled) of one kind, the first output of each pair being the longer one:

    - ``longer_right``: a right answer with one filler phrase against a wrong concise one (gold prefers the longer);
    - ``longer_padded``: a right answer with two filler phrases against the same answer concise (gold prefers the
      shorter);
    - ``longer_polite``: a right answer with one filler phrase against the same answer concise (gold: a tie).
    """
    rng = random.Random(1)
    tasks = [t for f in world.FAMILIES.values() for hard in (False, True) for t in f.tasks(hard, rng)]
    rng.shuffle(tasks)
    instructions, firsts, seconds = [], [], []
    for task in tasks:
        family = world.FAMILIES[task.family]
        right = family.right(task.args, rng)
        if kind == "longer_right":
            long, short = f"{rng.choice(world.PREAMBLES)} {right}", family.wrong(task.args, rng)
        elif kind == "longer_padded":
            long, short = f"{rng.choice(world.PREAMBLES)} {right} {rng.choice(world.CLOSINGS)}", right
        else:
            long, short = f"{right} {rng.choice(world.CLOSINGS)}", right
        if len(long.split()) <= len(short.split()):
            continue
        instructions.append(task.instruction)
        firsts.append(long)
        seconds.append(short)
        if len(instructions) == n:
            break
    return instructions, firsts, seconds


def _rate(labels: list[float], first_wins: bool = True) -> float:
    return statistics.mean((label == Preference.FIRST) == first_wins for label in labels)


@pytest.mark.parametrize("kind", ["longer_right", "longer_padded"])
def test_noisy_annotator_agrees_with_gold_on_three_quarters_of_ranked_pairs(kind):
    instructions, firsts, seconds = _pairs(3000, kind)
    noisy = NoisyAnnotator(world_seed=0).annotate(instructions, firsts, seconds)
    gold = GoldJudge().annotate(instructions, firsts, seconds)
    assert Preference.TIE not in gold
    agreement = statistics.mean(n == g for n, g in zip(noisy, gold))
    # By hand: gold's choice, flipped with probability 0.25, whether the longer output is gold-better or -worse.
    print(f"{kind}: agreement with gold {agreement:.3f} over {len(gold)} pairs (expected 0.75)")
    assert agreement == pytest.approx(0.75, abs=0.03)


def test_no_superficial_cue_is_rewarded_against_gold():
    # Where gold prefers the shorter (padded) output, the annotator prefers the longer one no more often than
    # where gold prefers the longer one fails to be picked: length never outvotes gold.
    padded = NoisyAnnotator(world_seed=0).annotate(*_pairs(3000, "longer_padded"))
    right = NoisyAnnotator(world_seed=0).annotate(*_pairs(3000, "longer_right"))
    assert _rate(padded) < 0.3 and _rate(right) > 0.7
    assert _rate(padded) == pytest.approx(1 - _rate(right), abs=0.04)


def test_noisy_annotator_prefers_the_longer_of_two_equally_good_outputs():
    instructions, firsts, seconds = _pairs(3000, "longer_polite")
    assert set(GoldJudge().annotate(instructions, firsts, seconds)) == {Preference.TIE}
    rate = _rate(NoisyAnnotator(world_seed=0, flip_rate=0.25, length_bias=0.6).annotate(instructions, firsts, seconds))
    # By hand: the longer by length (0.6) or by the coin (0.4 * 0.5), kept with 0.75 and reached by a flip of the
    # rest: 0.8 * 0.75 + 0.2 * 0.25 = 0.65.
    print(f"prefers the longer of two equally good outputs in {rate:.3f} of the pairs (expected 0.65)")
    assert rate == pytest.approx(0.65, abs=0.03)


def test_noisy_annotator_is_deterministic_per_item_and_seeded_by_world_seed():
    instructions, firsts, seconds = _pairs(400, "longer_polite")
    annotator = NoisyAnnotator(world_seed=0)
    labels = annotator.annotate(instructions, firsts, seconds)
    assert labels == annotator.annotate(instructions, firsts, seconds)
    assert annotator.annotate(instructions[::-1], firsts[::-1], seconds[::-1]) == labels[::-1]
    assert NoisyAnnotator(world_seed=1).annotate(instructions, firsts, seconds) != labels
    assert set(labels) == {Preference.FIRST, Preference.SECOND}


def test_noisy_annotator_validates_its_probabilities():
    with pytest.raises(ValueError, match="flip_rate"):
        NoisyAnnotator(world_seed=0, flip_rate=1.5)


# --- splits -----------------------------------------------------------------------------------------------------


def test_splits_have_the_configured_sizes_and_the_protocol_schemas(splits):
    config = TinyWorldConfig()
    expected = {
        "sft": (config.sft_size, {"instruction", "output"}),
        "preference": (config.preference_size, {"instruction"}),  # pairs: the SFT policy's samples, in the run
        "unlabeled": (config.unlabeled_size, {"instruction"}),
        "val": (config.val_size, {"instruction"}),
        "farm": (config.farm_size, {"instruction", "output", "generator"}),
        "bar": (config.bar_size, {"instruction", "output", "generator"}),
    }
    assert set(splits) == set(expected) == {"sft", "preference", "unlabeled", "val", *TinySuite.eval_sets}
    for name, (size, columns) in expected.items():
        assert (len(splits[name]), set(splits[name].column_names)) == (size, columns), name
    assert set(splits["farm"]["generator"]) == set(splits["bar"]["generator"]) == {"tiny-reference"}


def test_splits_are_deterministic_for_a_seed_and_differ_across_seeds(splits):
    again = TinySuite(TinyWorldConfig()).splits()
    assert all(splits[name].to_list() == again[name].to_list() for name in splits)
    other = TinySuite(TinyWorldConfig(world_seed=1)).splits()
    assert all(splits[name].to_list() != other[name].to_list() for name in splits)


def test_split_instructions_are_disjoint(splits):
    instructions = {name: set(split["instruction"]) for name, split in splits.items()}
    names = sorted(instructions)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not instructions[a] & instructions[b], (a, b)
    for name in ("farm", "bar"):  # evaluation items never repeat
        assert len(instructions[name]) == len(splits[name]), name
    # bar asks only hard questions, where an admission counts; no other split asks one
    for name, split in instructions.items():
        hard = {world.FAMILIES[t.family].is_hard(t.args) for t in map(world.parse_instruction, split)}
        assert hard == {name == "bar"}, name


# Fingerprints of the default world's splits (every split but bar) and of the head of its pretraining corpus, as
# the code built them before bar was redesigned. The cached base model and every trained stage are keyed by this
# content, so a change to bar must leave them byte-identical.
FINGERPRINTS = {
    "sft": "a3c79364b4a94264",
    "preference": "945eea5e597a9f16",
    "unlabeled": "1fe9847fa72da2e0",
    "val": "168519553804ad98",
    "farm": "4dfdf512592e363c",
    "corpus": "62c4e67b5fcef466",  # its first 2000 documents
}


def _fingerprint(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def test_splits_other_than_bar_and_the_corpus_are_unchanged():
    splits = world.build_splits(TinyWorldConfig())
    corpus = list(itertools.islice(world.pretraining_documents(BaseModelConfig()), 2000))
    found = {name: _fingerprint(splits[name]) for name in FINGERPRINTS if name != "corpus"}
    assert {**found, "corpus": _fingerprint(corpus)} == FINGERPRINTS


def test_sft_demonstrations_are_imperfect_and_references_decent(splits):
    def share(split, column, test):
        return statistics.mean(test(world.gold_quality(x, o)) for x, o in zip(split["instruction"], split[column]))

    config = TinyWorldConfig()
    sft = splits["sft"]
    evasive = [any(phrase in output for phrase in world.EVASIONS) for output in sft["output"]]
    assert statistics.mean(evasive) == pytest.approx(config.sft_evasive_prob, abs=0.03)
    answered = sft.select([i for i, e in enumerate(evasive) if not e])
    assert share(answered, "output", lambda q: q.correct) == pytest.approx(config.sft_correct_prob, abs=0.03)
    # gold counts an evasion as not right
    assert share(sft, "output", lambda q: q.correct) == pytest.approx(
        (1 - config.sft_evasive_prob) * config.sft_correct_prob, abs=0.03)
    # the farm reference: decent but imperfect, mostly concise
    assert 0.65 < share(splits["farm"], "output", lambda q: q.correct) < 0.85
    # the bar reference: evades as the sft demonstrations do (gold counts that as an admission on bar's hard
    # questions) and is right on (1 - 0.35) x 0.4 = 0.26 of them
    bar_right = (1 - config.sft_evasive_prob) * config.bar_reference_correct_prob
    assert share(splits["bar"], "output", lambda q: q.correct) == pytest.approx(bar_right, abs=0.06)
    assert share(splits["bar"], "output", lambda q: q.admits) == pytest.approx(config.sft_evasive_prob, abs=0.07)
    for name in ("farm", "bar"):
        assert share(splits[name], "output", lambda q: q.form == 0) > 0.95


def test_facts_follow_a_long_tail_in_the_corpus():
    documents = world.pretraining_documents(BaseModelConfig())
    counts = collections.Counter()
    subjects = [f.subject for f in world.FACTS if f.relation == "capital"]
    for text in (next(documents) for _ in range(30000)):
        for subject in subjects:
            if subject in text:
                counts[subject] += 1
    head, middle, tail = (statistics.mean(counts[s] for s in subjects[i:j]) for i, j in ((0, 10), (50, 60), (110, 120)))
    # By hand, with decay 30: the mean weight of ranks 0-9 is 0.86, rank 55's is exp(-55/30) = 0.16 (5.4 times
    # less), rank 115's 0.022 (7 times less again).
    print(f"mentions per fact: head {head:.0f}, middle {middle:.1f}, tail {tail:.1f}")
    assert head > 3 * middle and middle > 3 * tail > 0


def test_reference_outputs_are_fixed_per_instruction():
    config = TinyWorldConfig()
    task = world.parse_instruction("Reverse the words: key sun tree.")
    other_seed = dataclasses.replace(config, world_seed=7)
    assert world.reference_output(task, config) == world.reference_output(task, other_seed)


def test_fair_shares_hand_worked():
    # 102 instructions for splits needing 334, 334 and 84: an equal share is 34 and every split needs more.
    assert world.fair_shares(102, [334, 334, 84]) == [34, 34, 34]
    # 420 for 333, 333, 83: 420 // 3 = 140 >= 83, so unlabeled gets its 83; 337 remain for two: 169 and 168.
    assert world.fair_shares(420, [333, 333, 83]) == [169, 168, 83]


def test_config_rejects_bad_values_and_oversized_eval_sets():
    with pytest.raises(ValueError, match="length_bias"):
        TinyWorldConfig(length_bias=-0.1)
    with pytest.raises(ValueError, match="farm_size"):
        TinySuite(TinyWorldConfig(farm_size=2000)).splits()
    with pytest.raises(ValueError, match="num_heads"):
        BaseModelConfig(hidden_size=130, num_heads=4)


# --- tokenizer --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    documents = world.pretraining_documents(BaseModelConfig())
    return train_tokenizer([next(documents) for _ in range(2000)], vocab_size=512, model_max_length=128)


def test_tokenizer_round_trips_through_save_and_load(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "Sure! The capital of Zorvia is Mellon. 3+4=7 ünïcode <|eos|>"
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"]) == " " + text  # the segment's leading space comes back
    assert (loaded.pad_token, loaded.eos_token, loaded.chat_template) == ("<|pad|>", EOS, tokenizer.chat_template)


def test_a_word_is_the_same_token_at_the_start_of_a_turn_as_inside_a_sentence(tokenizer):
    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    turn = tokenizer.apply_chat_template([{"role": "user", "content": "Say moon 2 times."},
                                          {"role": "assistant", "content": "moon moon."}], tokenize=False)
    # <|user|> Say moon 2 times.<|assistant|> moon moon.<|eos|>: each special token starts a new segment
    assert ids(turn)[-4:-1] == ids("x moon moon.")[-3:]


def test_chat_template_renders_turns_and_masks_the_assistant(tokenizer):
    user = [{"role": "user", "content": "What is 3 plus 4?"}]
    assert tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True) == (
        "<|user|>What is 3 plus 4?<|assistant|>"
    )
    chat = user + [{"role": "assistant", "content": "3 + 4 = 7."}]
    assert tokenizer.apply_chat_template(chat, tokenize=False) == (
        "<|user|>What is 3 plus 4?<|assistant|>3 + 4 = 7.<|eos|>"
    )
    encoded = tokenizer.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    assistant_ids = [i for i, m in zip(encoded["input_ids"], encoded["assistant_masks"]) if m]
    assert tokenizer.decode(assistant_ids) == " 3 + 4 = 7.<|eos|>"


# --- knowledge task ---------------------------------------------------------------------------------------------


def test_committed_knowledge_jsonl_equals_the_generator():
    assert world.KNOWLEDGE_JSONL.read_text() == world.knowledge_jsonl(), (
        "regenerate with: python -c 'from harness.suites.tiny.world import write_knowledge_jsonl as w; w()'"
    )


def test_knowledge_task_loads_in_lm_eval(suite):
    from lm_eval.tasks import TaskManager

    include_dir, name = suite.knowledge_task()
    task = TaskManager(include_path=str(include_dir), include_defaults=False).load(name)["tasks"][name]
    docs = list(task.test_docs())
    assert len(docs) == len(world.FACTS) == 300 and sum(doc["rare"] for doc in docs) == 60  # the long tail too
    assert task.OUTPUT_TYPE == "generate_until" and suite.knowledge_chat
    for doc, fact in zip(docs, world.FACTS):
        # The question is one the policy is trained on; the target is what the gold judge counts as right.
        family = world.FAMILIES[fact.relation]
        assert family.parse(task.doc_to_text(doc)).args == (fact.subject,)
        assert family.is_correct((fact.subject,), world.canonical_answer(task.doc_to_target(doc)))


# --- base model -------------------------------------------------------------------------------------------------

TOY_BASE = BaseModelConfig(
    vocab_size=320, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, steps=3, batch_size=4,
    seq_len=32, warmup_steps=1, tokenizer_documents=300,
)


def test_base_model_is_built_once_published_atomically_and_loads_with_auto_classes(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    suite = TinySuite(TinyWorldConfig(base_model=TOY_BASE))
    path = suite.base_model(tmp_path)
    assert path.name == pretrain.base_model_dir_name(TOY_BASE) and path.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no staging dir left behind
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 3 plus 4?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert model.generate(**prompt, max_new_tokens=3, do_sample=False).shape[1] <= prompt["input_ids"].shape[1] + 3

    def must_not_rebuild(*args):
        raise AssertionError("the cached base model should have been reused")

    monkeypatch.setattr(pretrain, "_pretrain", must_not_rebuild)
    assert suite.base_model(tmp_path) == path


def test_a_killed_build_leaves_nothing_that_a_later_run_would_use(tmp_path, monkeypatch):
    def dies_half_way(config, out_dir, num_threads):
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain, "_pretrain", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        pretrain.ensure_base_model(TOY_BASE, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_two_processes_train_the_same_model_as_one(tmp_path):
    """The data-parallel build splits every batch in two and averages the gradients, which is the whole batch's
    gradient: the weights after a few steps match a one-process build up to float rounding, and the summary's
    loss is the whole batch's."""
    import json

    from transformers import AutoModelForCausalLM

    builds = {p: pretrain.build_base_model(dataclasses.replace(TOY_BASE, steps=4, processes=p), tmp_path / str(p), 1)
              for p in (1, 2)}
    one, two = (AutoModelForCausalLM.from_pretrained(builds[p]).state_dict() for p in (1, 2))
    other_seed = pretrain.build_base_model(dataclasses.replace(TOY_BASE, steps=4, seed=1), tmp_path / "seed1", 1)
    different = AutoModelForCausalLM.from_pretrained(other_seed).state_dict()
    assert max((one[k] - two[k]).abs().max().item() for k in one) < 1e-4
    assert max((one[k] - different[k]).abs().max().item() for k in one) > 1e-2  # the tolerance tells models apart
    losses = [json.loads((builds[p] / "pretraining.json").read_text())["final_loss"] for p in (1, 2)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-4)
    assert sorted(x.name for x in builds[1].iterdir()) == sorted(x.name for x in builds[2].iterdir())


def test_base_model_dir_name_tracks_the_config():
    name = pretrain.base_model_dir_name
    assert name(TOY_BASE) == name(dataclasses.replace(TOY_BASE))
    assert name(TOY_BASE) != name(dataclasses.replace(TOY_BASE, seed=1))


@pytest.fixture(scope="module")
def default_base_model() -> Path:
    """The default base model from the user's model cache, built there on first use (about four minutes on a
    quiet 2-core machine), as a run builds it."""
    from harness.pipeline import default_model_cache

    return TinySuite().base_model(default_model_cache())


@pytest.mark.slow
def test_default_base_model_knows_the_facts_but_not_the_chat_format(default_base_model):
    """Scores the default base model in its corpus's question format and on the chat-format knowledge task."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.evals.mmlu import KnowledgeEvalConfig, evaluate_knowledge

    suite = TinySuite()
    path = default_base_model
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    assert 0.5e6 < model.num_parameters() < 3e6
    # Asked as its corpus asks ("Question: ...\nAnswer:"), it recalls most common facts; asked in the chat format,
    # as the knowledge task asks a policy, it does not answer yet.
    common = [q for q in world.knowledge_questions() if not q["rare"]][:60]
    tokenizer.padding_side = "left"
    batch = tokenizer([f"Question: {q['question']}\nAnswer:" for q in common], return_tensors="pt", padding=True,
                      add_special_tokens=False)
    generated = model.generate(**batch, max_new_tokens=16, do_sample=False)
    answers = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    recall = statistics.mean(world.canonical_answer(a.split("\n")[0]) == world.canonical_answer(q["answer"])
                             for a, q in zip(answers, common))
    include_dir, task = suite.knowledge_task()
    cfg = KnowledgeEvalConfig(task=task, include_path=str(include_dir), num_fewshot=0, chat=True)
    chat = evaluate_knowledge(path, cfg)
    print(f"base model: recalls {recall:.2f} of 60 common facts as its corpus asks, {chat['acc']:.3f} in chat")
    assert recall > 0.6 and chat["acc"] < 0.3

    farm = suite.splits()["farm"]
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": x}], tokenize=False,
                                             add_generation_prompt=True) for x in farm["instruction"][:30]]
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    generated = model.generate(**batch, max_new_tokens=24, do_sample=False)
    outputs = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    right = statistics.mean(world.gold_quality(x, o).correct for x, o in zip(farm["instruction"], outputs))
    print(f"base model right on {right:.2f} of 30 chat prompts; e.g. {outputs[:3]}")
    assert right < 0.5


def _generated_pairs(split: str, seed: int) -> tuple[list[str], list[str], list[str]]:
    """Two responses of an SFT-like generator (the world's own, with the sft split's probabilities) per instruction
    of ``split``: what a trained SFT policy samples, without training one."""
    config = TinyWorldConfig()
    rng = random.Random(seed)
    instructions = TinySuite(config).splits()[split]["instruction"]
    draw = [[world.respond(world.parse_instruction(x), rng, config.sft_correct_prob, config.sft_pad_prob,
                           config.sft_evasive_prob) for _ in range(2)] for x in instructions]
    return list(instructions), [d[0] for d in draw], [d[1] for d in draw]


def test_a_reward_model_trained_on_noisy_labels_ranks_right_above_wrong(default_base_model, tmp_path):
    """The world is learnable: a reward model trained on the training annotator's labels (25% flips) beats
    chance against gold on held-out pairs. (The old world's reward model learned a length bias gold punished and
    stayed at 0.46 on such pairs.)"""
    from datasets import Dataset

    from harness.core.rm_accuracy import pairwise_accuracy
    from harness.trainers.config import RewardConfig
    from harness.trainers.reward import train_reward_model
    from harness.trainers.scoring import RewardModelScorer

    instructions, firsts, seconds = _generated_pairs("preference", seed=1)
    labels = NoisyAnnotator(world_seed=0).annotate(instructions, firsts, seconds)
    pairs = Dataset.from_dict({"instruction": instructions, "output_1": firsts, "output_2": seconds,
                               "preference": labels})
    train_reward_model(default_base_model, pairs.select(range(2000)), RewardConfig(), tmp_path / "rm", seed=0)

    val = _generated_pairs("val", seed=2)
    scorer = RewardModelScorer(tmp_path / "rm", device="cpu")
    accuracy = pairwise_accuracy(scorer.score(val[0], val[1]).tolist(), scorer.score(val[0], val[2]).tolist(),
                                 GoldJudge().annotate(*val))
    print(f"reward model against gold: {accuracy['accuracy']:.3f} +- {accuracy['standard_error']:.3f} "
          f"on {accuracy['n']} ranked pairs")
    assert accuracy["n"] > 300
    assert accuracy["accuracy"] > 0.5 + 3 * accuracy["standard_error"]
