"""Periods, outlets and "latest" read from questions, Dutch and English, relative to a fixed day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.render import render_answer
from bot.scope import NEWS, SOFT, read_scope

TODAY = dt.date(2024, 12, 4)  # a Wednesday
D = dt.date
OUTLETS = ["NOS", "NRC", "de Volkskrant", "RTL Nieuws", "Reuters", "AD", "BBC"]

# (question, since, until, strength, outlets, latest)
CASES = [
    # today / yesterday
    ("Wat gebeurde er vandaag in Gaza?", D(2024, 12, 4), D(2024, 12, 4), NEWS, (), False),
    ("What happened today in Gaza?", D(2024, 12, 4), D(2024, 12, 4), NEWS, (), False),
    ("Wat zei de premier vanochtend?", D(2024, 12, 4), D(2024, 12, 4), NEWS, (), False),
    ("What did the minister say this morning?", D(2024, 12, 4), D(2024, 12, 4), NEWS, (), False),
    ("Wat besloot het kabinet vanavond?", D(2024, 12, 4), D(2024, 12, 4), NEWS, (), False),
    ("wat gebeurde er gisteren in Gaza?", D(2024, 12, 3), D(2024, 12, 3), NEWS, (), False),
    ("What happened yesterday in Gaza?", D(2024, 12, 3), D(2024, 12, 3), NEWS, (), False),
    ("Wie won gisteravond de verkiezingen?", D(2024, 12, 3), D(2024, 12, 3), NEWS, (), False),
    ("Who won the vote last night?", D(2024, 12, 3), D(2024, 12, 3), NEWS, (), False),
    ("Wat gebeurde er eergisteren in Kyiv?", D(2024, 12, 2), D(2024, 12, 2), NEWS, (), False),
    ("What happened the day before yesterday in Kyiv?", D(2024, 12, 2), D(2024, 12, 2), NEWS, (), False),
    # weeks
    ("Wat is er deze week over stikstof gemeld?", D(2024, 12, 2), D(2024, 12, 4), NEWS, (), False),
    ("What was reported this week about nitrogen?", D(2024, 12, 2), D(2024, 12, 4), NEWS, (), False),
    ("wat meldde de NOS vorige week over de stikstofregels?", D(2024, 11, 25), D(2024, 12, 1), NEWS, ("NOS",), False),
    ("What did Reuters report last week about Syria?", D(2024, 11, 25), D(2024, 12, 1), NEWS, ("Reuters",), False),
    ("Wat gebeurde er de afgelopen week in Syrië?", D(2024, 11, 28), D(2024, 12, 4), NEWS, (), False),
    ("What happened in the past week in Syria?", D(2024, 11, 28), D(2024, 12, 4), NEWS, (), False),
    ("Wat gebeurde er de afgelopen 3 dagen?", D(2024, 12, 2), D(2024, 12, 4), NEWS, (), False),
    ("Wat gebeurde er de laatste drie dagen in Den Haag?", D(2024, 12, 2), D(2024, 12, 4), NEWS, (), False),
    ("What happened over the last 10 days in Gaza?", D(2024, 11, 25), D(2024, 12, 4), NEWS, (), False),
    ("What happened in the past two weeks in Gaza?", D(2024, 11, 21), D(2024, 12, 4), NEWS, (), False),
    ("Wat is er de afgelopen twee weken gebeurd?", D(2024, 11, 21), D(2024, 12, 4), NEWS, (), False),
    # months
    ("Wat gebeurde er deze maand met de huizenprijzen?", D(2024, 12, 1), D(2024, 12, 4), NEWS, (), False),
    ("What happened to house prices this month?", D(2024, 12, 1), D(2024, 12, 4), NEWS, (), False),
    ("Wat gebeurde er vorige maand met de inflatie?", D(2024, 11, 1), D(2024, 11, 30), NEWS, (), False),
    ("What happened to inflation last month?", D(2024, 11, 1), D(2024, 11, 30), NEWS, (), False),
    ("Wat besloot de Kamer in maart?", D(2024, 3, 1), D(2024, 3, 31), SOFT, (), False),
    ("What did parliament decide in March?", D(2024, 3, 1), D(2024, 3, 31), SOFT, (), False),
    ("Wat gebeurde er in december?", D(2024, 12, 1), D(2024, 12, 31), SOFT, (), False),
    ("Wat gebeurde er begin november?", D(2024, 11, 1), D(2024, 11, 30), SOFT, (), False),
    ("Wat speelde er in mei?", D(2024, 5, 1), D(2024, 5, 31), SOFT, (), False),
    ("Wat gebeurde er in juni", D(2024, 6, 1), D(2024, 6, 30), SOFT, (), False),
    # days of the month
    ("Wat gebeurde er op 3 december?", D(2024, 12, 3), D(2024, 12, 3), SOFT, (), False),
    ("What happened on 3 December?", D(2024, 12, 3), D(2024, 12, 3), SOFT, (), False),
    ("What happened on December 3?", D(2024, 12, 3), D(2024, 12, 3), SOFT, (), False),
    ("What happened on December 3rd?", D(2024, 12, 3), D(2024, 12, 3), SOFT, (), False),
    ("Wat gebeurde er op 25 december?", D(2023, 12, 25), D(2023, 12, 25), SOFT, (), False),
    ("Wat zei Rutte op 14 februari?", D(2024, 2, 14), D(2024, 2, 14), SOFT, (), False),
    # since
    ("Wat is er sinds maandag gebeurd in Gaza?", D(2024, 12, 2), D(2024, 12, 4), SOFT, (), False),
    ("What happened in Gaza since Monday?", D(2024, 12, 2), D(2024, 12, 4), SOFT, (), False),
    ("Wat is er sinds vrijdag gebeurd?", D(2024, 11, 29), D(2024, 12, 4), SOFT, (), False),
    ("Wat is er sinds 1 november gebeurd?", D(2024, 11, 1), D(2024, 12, 4), SOFT, (), False),
    ("What has happened since November 20?", D(2024, 11, 20), D(2024, 12, 4), SOFT, (), False),
    ("Wat is er veranderd sinds oktober?", D(2024, 10, 1), D(2024, 12, 4), SOFT, (), False),
    ("Wat gebeurt er vanaf maandag?", D(2024, 12, 2), D(2024, 12, 4), SOFT, (), False),
    # weekdays: the last one
    ("Wat gebeurde er maandag in Den Haag?", D(2024, 12, 2), D(2024, 12, 2), SOFT, (), False),
    ("What happened on Monday in The Hague?", D(2024, 12, 2), D(2024, 12, 2), SOFT, (), False),
    ("Wat zei de minister op vrijdag?", D(2024, 11, 29), D(2024, 11, 29), SOFT, (), False),
    ("What did the minister say last Friday?", D(2024, 11, 29), D(2024, 11, 29), SOFT, (), False),
    ("Wat gebeurde er zaterdagavond in Amsterdam?", D(2024, 11, 30), D(2024, 11, 30), SOFT, (), False),
    ("Wat gebeurde er woensdag?", D(2024, 12, 4), D(2024, 12, 4), SOFT, (), False),
    # dates with a year are about events, not about when they were reported
    ("Hoeveel doden vielen er in 2023 bij het heiligdom?", None, None, "", (), False),
    ("Hoeveel mensen ontvoerde Hamas op 7 oktober 2023?", None, None, "", (), False),
    ("How many vessels have the Houthis targeted since November 2023?", None, None, "", (), False),
    ("What temperature was measured on 15 September 2020?", None, None, "", (), False),
    ("What was the average temperature over the past thirty years?", None, None, "", (), False),
    ("Hoeveel hebben de dwangsommen de afgelopen weken gekost?", None, None, "", (), False),
    ("Sinds wanneer zit Navalny in de gevangenis?", None, None, "", (), False),
    # outlets
    ("Wat meldt de Volkskrant over de formatie?", None, None, "", ("de Volkskrant",), False),
    ("Wat schrijft NRC over de formatie?", None, None, "", ("NRC",), False),
    ("What did the BBC say about Gaza?", None, None, "", ("BBC",), False),
    ("Wat zegt RTL Nieuws over de storm?", None, None, "", ("RTL Nieuws",), False),
    ("volgens het AD en de NOS", None, None, "", ("AD", "NOS"), False),
    ("Wat zei de jury volgens de rechtbank?", None, None, "", (), False),
    ("Is er een ad campagne over nos huizen?", None, None, "", (), False),
    # latest
    ("latest on the cabinet crisis", None, None, "", (), True),
    ("Wat is het laatste nieuws over de kabinetscrisis?", None, None, "", (), True),
    ("Wat is de nieuwste stand in de formatie?", None, None, "", (), True),
    ("What is the most recent news from Gaza?", None, None, "", (), True),
    ("Wat is het laatste nieuws van de NOS over Gaza?", None, None, "", ("NOS",), True),
]


@pytest.mark.parametrize(("question", "since", "until", "strength", "outlets", "latest"), CASES, ids=[c[0] for c in CASES])
def test_questions_name_their_period_outlets_and_recency(question, since, until, strength, outlets, latest) -> None:
    scope = read_scope(question, TODAY, OUTLETS)
    assert (scope.since, scope.until, scope.strength, scope.outlets, scope.latest) == (since, until, strength, outlets, latest)
    assert scope.question


def test_at_least_sixty_phrasings_in_both_languages() -> None:
    assert len(CASES) >= 60


def _write(folder: Path, name: str, title: str, outlet: str, date: str, text: str) -> None:
    (folder / name).write_text(f"---\ntitle: {title}\noutlet: {outlet}\ndate: {date}\n---\n\n{text}\n", encoding="utf-8")


@pytest.fixture
def news(make_bron, tmp_path: Path):
    folder = tmp_path / "news"
    folder.mkdir()
    _write(folder, "a.md", "Storm raast over Zeeland", "NOS", "2024-12-03",
           "Een zware storm raasde gisteren over Zeeland. In Vlissingen werden windstoten van 130 kilometer per uur gemeten.\n\n"
           "De brandweer rukte meer dan tweehonderd keer uit voor omgewaaide bomen.")
    _write(folder, "b.md", "Storm in Zeeland voorbij", "NRC", "2024-11-20",
           "De storm die vorige maand over Zeeland trok, veroorzaakte in Vlissingen windstoten van 90 kilometer per uur.\n\n"
           "De schade bleef beperkt tot enkele daken.")
    bron = make_bron(folder)
    bron.today = lambda: TODAY
    return bron


def test_a_period_in_the_question_limits_the_quotes_and_is_named(news) -> None:
    answer = news.answer("Hoe hard waaide het gisteren in Vlissingen?", "s1")
    assert not answer.abstained and answer.since == answer.until == "2024-12-03"
    assert {p.article.outlet for p in answer.passages} == {"NOS"}
    text = render_answer(answer, "nl", "text")[0]
    assert text.startswith("In artikelen van 3 december 2024:") and "130 kilometer" in text


def test_an_outlet_in_the_question_limits_the_quotes(news) -> None:
    answer = news.answer("Hoe hard waaide het in Vlissingen volgens NRC?", "s2")
    assert not answer.abstained and {p.article.outlet for p in answer.passages} == {"NRC"}
    assert "90 kilometer" in answer.passages[0].text


def test_an_empty_period_is_said_instead_of_quoting_another(news) -> None:
    answer = news.answer("Hoe hard waaide het vandaag in Vlissingen?", "s3")
    assert answer.scope_empty and not answer.passages
    assert render_answer(answer, "nl", "text")[0] == "Ik heb geen artikelen van 4 december 2024, dus ik kan niets citeren."


def test_a_weekday_with_no_articles_is_read_as_the_event_day(news) -> None:
    # Friday 29 November has no articles: "op vrijdag" is when the storm was, not a publication date.
    answer = news.answer("Hoe hard waaide het op vrijdag in Vlissingen?", "s4")
    assert answer.since is None and not answer.scope_empty and not answer.abstained


def test_latest_leads_with_the_newest_answering_article(news) -> None:
    answer = news.answer("Wat is het laatste nieuws over de windstoten in Vlissingen?", "s5")
    assert not answer.abstained and answer.passages[0].article.outlet == "NOS"


def test_given_dates_limit_the_search(news) -> None:
    answer = news.answer("Hoe hard waaide het in Vlissingen?", "s6", since=D(2024, 11, 1), until=D(2024, 11, 30))
    assert {p.article.outlet for p in answer.passages} == {"NRC"}
    assert render_answer(answer, "en", "text")[0].startswith("In articles from 1–30 November 2024:")


def test_articles_can_be_filtered_and_sorted_by_date_and_outlet(news, monkeypatch, capsys) -> None:
    from bot import cli

    monkeypatch.setattr(cli, "open_bron", lambda args, config: news)
    assert cli.main(["-q", "articles", "--sort", "date"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["NOS", "NRC"]
    assert cli.main(["-q", "articles", "--outlet", "nrc"]) == 0
    assert [line.split("\t")[2] for line in capsys.readouterr().out.splitlines()] == ["NRC"]
    assert cli.main(["-q", "articles", "--since", "2024-12-01"]) == 0
    assert [line.split("\t")[3] for line in capsys.readouterr().out.splitlines()] == ["2024-12-03"]


def test_an_outlet_named_as_a_subject_does_not_limit_the_search() -> None:
    scope = read_scope("Who is the Red Bull team principal who praised Verstappen?", TODAY, ["Red Bull", "NOS"])
    assert scope.outlets == () and "Red Bull" in scope.question
    assert read_scope("Wat meldt Red Bull over de race?", TODAY, ["Red Bull"]).outlets == ("Red Bull",)


def test_latest_is_not_led_by_a_newer_report_that_does_not_answer(make_bron, tmp_path: Path) -> None:
    folder = tmp_path / "story"
    folder.mkdir()
    _write(folder, "a.md", "Storm raast over Zeeland", "NOS", "2024-12-02",
           "Een zware storm raasde over Zeeland. In Vlissingen werden windstoten van 130 kilometer per uur gemeten.\n\n"
           "De brandweer rukte meer dan tweehonderd keer uit voor omgewaaide bomen.")
    _write(folder, "b.md", "Opruimen na de storm in Zeeland", "NRC", "2024-12-04",
           "In Vlissingen ruimt de gemeente na de storm omgewaaide bomen op. Het stadspark blijft gesloten.\n\n"
           "Verzekeraars verwachten veel schademeldingen van huiseigenaren in Vlissingen.")
    bron = make_bron(folder)
    bron.today = lambda: TODAY
    answer = bron.answer("Wat is het laatste nieuws: hoe hard waaide het in Vlissingen?", "s7")
    assert not answer.abstained and "130 kilometer" in answer.passages[0].text


def _story_and_update(folder: Path, left_out: int) -> None:
    """A report and a follow-up two days later: the same text without paragraph ``left_out``."""
    paragraphs = [
        "Een zware storm raasde over Zeeland. De brandweer rukte meer dan tweehonderd keer uit.",
        "In Vlissingen werden windstoten van 130 kilometer per uur gemeten.",
        "Het stadspark van Middelburg blijft voorlopig gesloten voor publiek.",
    ]
    _write(folder, "a.md", "Storm raast over Zeeland", "NOS", "2024-12-01", "\n\n".join(paragraphs))
    _write(folder, "b.md", "Storm in Zeeland, de stand", "NOS", "2024-12-03",
           "\n\n".join(p for i, p in enumerate(paragraphs) if i != left_out))


def test_latest_leads_with_the_newer_report_that_repeats_the_answer(make_bron, tmp_path: Path) -> None:
    folder = tmp_path / "repeated"
    folder.mkdir()
    _story_and_update(folder, left_out=2)
    bron = make_bron(folder)
    bron.today = lambda: TODAY
    answer = bron.answer("Laatste nieuws: hoe hard waaide het in Vlissingen?", "s8")
    lead = answer.passages[0]
    assert lead.article.title == "Storm in Zeeland, de stand" and lead.text[lead.highlight[0] : lead.highlight[1]].startswith("In Vlissingen")
    # The older report of the same sentence leaves the reply (one /more away), the plain question keeps both.
    # The older report of the same sentence leaves the reply, one /more away.
    assert all(p.article.title == "Storm in Zeeland, de stand" for p in answer.passages if "130 kilometer" in p.text)
    assert any(p.article.title == "Storm raast over Zeeland" and "130 kilometer" in p.text for p in answer.more)


def test_latest_is_not_led_by_a_newer_report_without_the_answering_sentence(make_bron, tmp_path: Path) -> None:
    folder = tmp_path / "lost"
    folder.mkdir()
    _story_and_update(folder, left_out=1)
    bron = make_bron(folder)
    bron.today = lambda: TODAY
    answer = bron.answer("Latest news: how strong were the gusts in Vlissingen?", "s9")
    assert not answer.abstained and answer.passages[0].article.title == "Storm raast over Zeeland"
    assert "130 kilometer" in answer.passages[0].text


def test_a_latest_phrase_is_not_searched_for() -> None:
    assert read_scope("Wat is het laatste nieuws over de kabinetscrisis?", TODAY).question == "Wat is over de kabinetscrisis?"
    assert read_scope("Latest news: who won the vote?", TODAY).question == "who won the vote?"
    # "laatste" that is part of what is asked stays.
    assert "laatste" in read_scope("Wie was de laatste gijzelaar die vrijkwam?", TODAY).question
    assert read_scope("Hoe hard waaide het (gisteren)?", TODAY).question == "Hoe hard waaide het?"


def test_a_period_admits_articles_by_their_day_whatever_the_time_and_never_undated_ones(make_bron, tmp_path: Path) -> None:
    folder = tmp_path / "times"
    folder.mkdir()
    _write(folder, "a.md", "Storm in de nacht", "NOS", "2024-12-03T23:30:00+01:00",
           "In Vlissingen werden vannacht windstoten van 130 kilometer per uur gemeten.")
    (folder / "b.md").write_text("---\ntitle: Storm zonder datum\noutlet: NRC\n---\n\nIn Vlissingen werden windstoten van 90 kilometer per uur gemeten.\n", encoding="utf-8")
    bron = make_bron(folder)
    bron.today = lambda: TODAY
    dates = {a.title: a.date for a in bron.library.articles()}
    assert dates["Storm zonder datum"] is None and dates["Storm in de nacht"].startswith("2024-12-03")
    answer = bron.answer("Hoe hard waaide het gisteren in Vlissingen?", "t1")
    assert [p.article.title for p in answer.passages] == ["Storm in de nacht"]
    assert bron.answer("Hoe hard waaide het vorige week in Vlissingen?", "t2").scope_empty
    assert {p.article.outlet for p in bron.answer("Hoe hard waaide het in Vlissingen volgens de NRC?", "t3").passages} == {"NRC"}


def test_an_event_day_whose_articles_do_not_answer_is_read_as_when_it_happened(make_bron, tmp_path: Path) -> None:
    # Monday 2 December has an article, on another subject: "maandag" is when the storm raged, so the
    # report of a week earlier answers, and the reply names no period it was limited to.
    folder = tmp_path / "event"
    folder.mkdir()
    _write(folder, "a.md", "Kabinet praat over begroting", "NOS", "2024-12-02",
           "Het kabinet vergaderde over de begroting voor volgend jaar. De minister van Financiën wil bezuinigen op subsidies.\n\n"
           "De oppositie noemt de plannen onduidelijk.")
    _write(folder, "b.md", "Storm raast over Zeeland", "NRC", "2024-11-26",
           "De storm raasde maandag over Zeeland. In Vlissingen werden maandag windstoten van 130 kilometer per uur gemeten.\n\n"
           "De brandweer rukte meer dan tweehonderd keer uit voor omgewaaide bomen.")
    bron = make_bron(folder)
    bron.today = lambda: TODAY
    answer = bron.answer("Hoe hard waaide het maandag in Vlissingen?", "e1")
    assert not answer.abstained and "130 kilometer" in answer.passages[0].text
    assert answer.since is None and answer.until is None
    # A news phrase keeps its period: nothing of yesterday answers, and that is said.
    assert bron.answer("Hoe hard waaide het gisteren in Vlissingen?", "e2").scope_empty
