"""The answerability decision: the model file, its fitting, /more, and `bron eval`'s reader figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.answering import decide
from bot.chat import ChatSession
from bot.config import load_config
from bot.core import Bron
from bot.errors import ConfigError
from bot.evaluate import score
from bot.models import ArticleInfo, Passage
from embeddings.answering.calibrate import Asked, cross_validate, fit, fit_logistic
from embeddings.answering.model import BUNDLED, AnswerabilityModel
from embeddings.answering.questions import counts_asked, has_new_of_kind, read_question
from embeddings.answering.signals import FEATURES, LEAD_ONLY, names_in_window
from support import NEWSQA, REPO, SEED_QUESTION_NL


def test_the_shipped_model_is_plain_json_for_these_signals() -> None:
    data = json.loads(BUNDLED.read_text(encoding="utf-8"))
    assert data["features"] == list(FEATURES)
    model = AnswerabilityModel.load()
    assert 0 < model.extra_threshold <= model.threshold < 1
    assert model.info["cross_validated"]["false_abstain_rate"] <= 0.04
    assert model.lead_weights is not None and len(data["lead_weights"]) == len(FEATURES)
    # Cross-validated by article when it was fitted; floors only move up.
    assert model.info["cross_validated"]["lead_sentence_hit"] >= 0.72
    # .3786 since the default vectors are bfloat16 (e5_precision: auto): one question of 206 below
    # int8's .3835 on this split; the mean over 20 fold splits is the same (.383 vs .382, README "Models").
    assert model.info["cross_validated"]["abstain_removed_rate"] >= 0.375
    assert model.info["cross_validated"]["abstain_rate"] >= 0.72
    assert model.info["cross_validated"]["answered_hit@3"] >= 0.89


def test_a_broken_model_file_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps({**json.loads(BUNDLED.read_text()), "features": ["cosine"]}))
    with pytest.raises(ConfigError, match=r"answer\.model.*bron calibrate"):
        load_config(REPO / "config.yaml", environ={"BRON_ANSWER_MODEL": str(bad)})
    bad.write_text(json.dumps({**json.loads(BUNDLED.read_text()), "lead_weights": [1.0, 2.0]}))
    with pytest.raises(ConfigError, match=r"answer\.model.*lead_weights"):
        load_config(REPO / "config.yaml", environ={"BRON_ANSWER_MODEL": str(bad)})
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"answer\.model"):
        load_config(REPO / "config.yaml", environ={"BRON_ANSWER_MODEL": str(bad)})


def _asked(rng: np.random.Generator, group: str, kind: str, answer: bool) -> Asked:
    x = rng.normal(0, 1, (6, len(FEATURES)))
    y = np.zeros(6)
    if answer:
        x[0, 0] += 5.0  # the answering sentence stands out on the first signal
        y[0] = 1
    return Asked(group + kind, group, kind, "nl", x, y, np.arange(6) // 2, [answer, False, False])


def test_fitting_finds_the_signal_and_keeps_false_abstention_within_the_target() -> None:
    rng = np.random.default_rng(1)
    asked = []
    for g in range(60):
        asked += [_asked(rng, f"a{g}", "present", True), _asked(rng, f"a{g}", "removed", False)]
    mean, scale, weights, bias = fit_logistic(np.vstack([a.x for a in asked]), np.concatenate([a.y for a in asked]))
    assert weights[0] > 1 and np.abs(weights[1:]).max() < weights[0] / 3
    figures, _ = cross_validate(asked, folds=5, false_abstain=0.05)
    assert figures["false_abstain_rate"] <= 0.1  # held-out articles: near the target, not tuned on them
    assert figures["abstain_removed_rate"] > 0.8
    assert figures["lead_sentence_hit"] > 0.85
    model = fit(asked, 0.05)
    assert AnswerabilityModel(**{**model.__dict__}).to_json() == model.to_json()


def test_question_reading_finds_kind_content_words_and_names() -> None:
    who = read_question("Wie is Mustafa Amin?")
    assert who.kind == "who" and who.names == ("mustafa", "amin")
    assert read_question("Hoeveel doden vielen er in 2023?").kind == "number"
    assert "2023" in read_question("Hoeveel doden vielen er in 2023?").names
    assert read_question("When did it start?").kind == "when"
    assert read_question("the of and a").content == ()


def test_lead_signals_see_what_the_sentence_adds_to_the_question() -> None:
    who = read_question("Wie leidt het onderzoek naar Mustafa Amin?")
    assert has_new_of_kind(who, "Het onderzoek wordt geleid door Jan de Vries.")
    assert not has_new_of_kind(who, "Het onderzoek naar Mustafa Amin begon in maart.")  # only the question's name and a month
    many = read_question("How many people died in the 2023 floods?")
    assert has_new_of_kind(many, "At least 40 people died.") and has_new_of_kind(many, "Twelve died, officials said.")
    assert not has_new_of_kind(many, "The 2023 floods hit the north.")
    when = read_question("Wanneer begon het proces?")
    assert has_new_of_kind(when, "Het proces begon op dinsdag.") and not has_new_of_kind(when, "Het proces duurde weken.")
    assert names_in_window(("amin", "turkije"), "Hij verbleef in Turkey.", "Mustafa Amin vluchtte.") == 1.0
    assert names_in_window(("amin",), "Hij verbleef daar.", "") == 0.0 and names_in_window((), "x", "") == 1.0
    # The number right before what a how-many question counts, compounds included; not another number.
    attacks = read_question("Hoeveel aanslagen waren de verdachten in 2016 van plan?")
    assert attacks.counted[0] == "aanslagen"
    assert counts_asked(attacks, "De protagonisten planden twee aanslagen in ons land.")
    assert counts_asked(attacks, "Er waren 3 terreuraanslagen gepland.")
    assert not counts_asked(attacks, "In 2016 planden ze aanslagen.")  # the question's own year
    assert not counts_asked(attacks, "Ze planden aanslagen op 12 plaatsen.")  # a number of something else
    assert counts_asked(read_question("How many asylum seekers stayed there?"), "About 2120 seekers stayed.")
    assert read_question("Wie leidt het onderzoek?").counted == () and not counts_asked(who, "Twee aanslagen.")
    # Signals of which sentence leads, not of whether to answer: the probability gives them no weight.
    model = AnswerabilityModel.load()
    assert {"names_in_window", "kind_new", "quote_agreement", "counted_number"} <= LEAD_ONLY
    assert all(w == 0 for name, w in zip(FEATURES, model.weights) if name in LEAD_ONLY)


def test_reply_leads_with_the_answer_and_more_shows_the_rest(bron: Bron) -> None:
    chat = ChatSession(bron, "t-more")
    reply = chat.handle(SEED_QUESTION_NL)
    assert reply[0].startswith("> **") and "in Turkije verbleef" in reply[0].split("\n")[0]
    more = "\n".join(chat.handle("/more"))
    assert more.startswith("De citaten van het antwoord, volledig:") and "in Turkije verbleef" in more
    declined = "\n".join(chat.handle("Wie won de Tour de France van 2023?"))
    assert declined.startswith("Ik heb in de artikelen geen passage gevonden") and "/more" in declined
    closest = "\n".join(chat.handle("/more"))
    assert closest.startswith("Andere passages die in de buurt kwamen")


def test_eval_scores_what_the_reader_sees(make_bron, config, tmp_path: Path) -> None:
    articles = [json.loads(line) for line in (NEWSQA / "articles.jsonl").read_text(encoding="utf-8").splitlines()[:2]]
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "articles.jsonl").write_text("\n".join(json.dumps(a) for a in articles) + "\n", encoding="utf-8")
    questions = [json.loads(line) for line in (NEWSQA / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    mine = [q for q in questions if q["article_id"] == articles[0]["id"]][:3] + [q for q in questions if q["article_id"] is None][:2]
    bron = make_bron(folder)
    keys = {i: k.rsplit("#", 1)[-1] for i, k in bron.library.keys().items()}
    result = score(bron.library, config, mine, keys)
    for key in ("answered_hit@3", "lead_sentence_hit", "abstain_rate", "abstain_removed_rate", "false_abstain_rate"):
        assert {key, key + "_nl", key + "_en"} <= set(result)
    assert result["answered_hit@3"] >= 2 / 3 and result["false_abstain_rate"] <= 1 / 3
    assert 0 < result["reply_chars_p50"] <= result["reply_chars_p90"]


def test_eval_scores_dated_outlet_and_latest_questions(make_bron, config, tmp_path: Path) -> None:
    from bot.evaluate_dated import score_dated

    articles = [json.loads(line) for line in (NEWSQA / "articles.jsonl").read_text(encoding="utf-8").splitlines()[:2]]
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "articles.jsonl").write_text("\n".join(json.dumps(a) for a in articles) + "\n", encoding="utf-8")
    questions = [json.loads(line) for line in (NEWSQA / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    mine = [q for q in questions if q["article_id"] in {a["id"] for a in articles}][:4]
    bron = make_bron(folder)
    before = sorted(bron.library.dated())
    keys = {i: k.rsplit("#", 1)[-1] for i, k in bron.library.keys().items()}
    result = score_dated(bron.library, config, mine, keys)
    assert result["dated_questions_period"] == result["dated_questions_latest"] == len(mine)
    # A period that does not hold the article never quotes it; every quote respects the period asked.
    assert result["dated_wrong_period_quotes_the_article"] == 0
    assert result["dated_quotes_in_scope_period"] == result["dated_quotes_in_scope_wrong_period"] == 1
    assert result["dated_scoped_answered_period"] >= 0.5 and result["dated_latest_newest_lead"] >= 0.5
    # The throwaway index is left as it was: own dates back, follow-up reports gone.
    assert sorted(bron.library.dated()) == before and bron.library.count() == 2


def _passage(n: int, confidence: float, lead_score: float) -> Passage:
    article = ArticleInfo(n, f"Artikel {n}", None, None, None, "nl")
    return Passage(article, "Een zin.", 0, 8, (0, 8), 1.0 / n, confidence, lead_score)


def test_the_probability_decides_whether_to_answer_and_the_lead_score_which_quote_leads() -> None:
    model = AnswerabilityModel.load()
    sure, leading, weak = _passage(1, 0.9, 1.0), _passage(2, model.threshold, 3.0), _passage(3, 0.0, 9.0)
    answer = decide("Wie is Mustafa Amin?", "nl", [sure, leading, weak], model, 3)
    # Of the quotes probable enough to show, the best lead score leads; one too improbable to show never does.
    assert answer.passages == [leading, sure] and answer.more == [weak]
    declined = decide("Wie is Mustafa Amin?", "nl", [_passage(1, 0.0, 5.0)], model, 3)
    assert declined.abstained
