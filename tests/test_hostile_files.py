"""Hostile and broken article files (issue 16): each is read, or skipped with a reason, never a crash.

These run the loaders and the chunker alone (no model), except the file-name test, which ingests.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from embeddings.chunking import MAX_SENTENCE_CHARS, chunk_text, paragraphs, sentences
from embeddings.documents import MAX_TITLE_CHARS, Document
from embeddings.ingest import read_documents
from embeddings.loaders import LoadError, load_file

GOOD = (
    "De gemeenteraad van Utrecht heeft dinsdag besloten een nieuwe fietsenstalling te bouwen bij het station. "
    "De stalling krijgt plaats voor twaalfduizend fietsen en moet in 2027 klaar zijn.\n\n"
    "De kosten worden geschat op veertig miljoen euro. Het Rijk betaalt de helft."
)


def _write(folder: Path, name: str | bytes, data: str | bytes) -> Path:
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(name))))
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def _load(path: Path) -> tuple[list[Document], list[str]]:
    items = list(load_file(path))
    return [i for i in items if isinstance(i, Document)], [str(i) for i in items if isinstance(i, LoadError)]


# -- bug 5: a deeply nested JSON line -------------------------------------------------------------


def test_a_deeply_nested_jsonl_line_is_skipped_and_the_rest_is_read(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "title": "Regel een", "text": GOOD}),
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"id": "b", "title": "Regel drie", "text": GOOD + " Drie."}),
        "\ufeff" + json.dumps({"id": "c", "title": "Na een BOM", "text": GOOD + " Vier."}),
    ]
    docs, errors = _load(_write(tmp_path, "mixed.jsonl", "\n".join(lines) + "\n"))
    assert [d.title for d in docs] == ["Regel een", "Regel drie", "Na een BOM"]
    assert len(errors) == 1 and errors[0].startswith("line 2") and "nested" in errors[0]


def test_deeply_nested_front_matter_is_refused_with_a_reason(tmp_path: Path) -> None:
    docs, errors = _load(_write(tmp_path, "deep.md", "---\ntitle: " + "[" * 50_000 + "]" * 50_000 + "\n---\n" + GOOD))
    assert not docs and len(errors) == 1 and "front matter" in errors[0]


# -- deeply nested HTML: libxml2 stops at 256 levels and drops the rest --------------------------------


@pytest.mark.parametrize("depth", [300, 2000])
def test_html_nested_a_few_hundred_levels_keeps_its_article_text(tmp_path: Path, depth: int) -> None:
    page = "<html><body>" + "<div>" * depth + "<p>" + GOOD + "</p>" + "</div>" * depth + "</body></html>"
    docs, errors = _load(_write(tmp_path, "diep.html", page))
    assert not errors and len(docs) == 1 and "twaalfduizend fietsen" in docs[0].text


@pytest.mark.parametrize(
    "page",
    [
        "<html><body>" + "<div>" * 100_000 + "<p>" + GOOD + "</p>" + "</div>" * 100_000 + "</body></html>",
        "<html><body><article><h1>Citaten</h1>" + "".join(f"<blockquote>laag {i} " for i in range(20_000)) + GOOD
        + "</blockquote>" * 20_000 + "</article></body></html>",
    ],
    ids=["divs", "quotes"],
)
def test_html_nested_beyond_the_parser_is_refused_not_cut_short(tmp_path: Path, page: str) -> None:
    # Before: the article came out empty ("no article text found") or as the first 256 levels of
    # quotes without the article's own text, ingested as if complete.
    docs, errors = _load(_write(tmp_path, "te-diep.html", page))
    assert not docs and len(errors) == 1 and "too deeply" in errors[0]


# -- bug 7: YAML alias expansion, giant titles ----------------------------------------------------

LAUGHS = (
    "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
)


@pytest.mark.parametrize("last", ["title: *f\n", "tags: *f\n", "m: &m {a: 1, b: 2}\nn: {<<: [*m, *m, *m, *m]}\n"])
def test_yaml_alias_expansion_in_front_matter_is_refused(tmp_path: Path, last: str) -> None:
    start = time.perf_counter()
    docs, errors = _load(_write(tmp_path, "laughs.md", "---\n" + LAUGHS + last + "---\n" + GOOD))
    assert not docs and len(errors) == 1 and "alias" in errors[0]
    assert time.perf_counter() - start < 2


def test_a_few_yaml_aliases_are_fine(tmp_path: Path) -> None:
    docs, errors = _load(_write(tmp_path, "alias.md", "---\noutlet: &o Testkrant\nsource: *o\ntitle: Kort\n---\n" + GOOD))
    assert not errors and docs[0].title == "Kort" and docs[0].outlet == "Testkrant"


@pytest.mark.parametrize(
    "name, data",
    [
        ("long.txt", "Titel " * 5000 + "\n" + GOOD),
        ("long.md", "---\ntitle: " + "Titel " * 5000 + "\n---\n" + GOOD),
        ("long.jsonl", json.dumps({"title": "Titel " * 5000, "text": GOOD}) + "\n"),
        ("long.html", "<html><body><article><h1>" + "Titel " * 5000 + "</h1><p>" + GOOD + "</p></article></body></html>"),
    ],
)
def test_giant_titles_are_cut_to_the_cap(tmp_path: Path, name: str, data: str) -> None:
    docs, errors = _load(_write(tmp_path, name, data))
    assert not errors and len(docs) == 1
    assert 100 < len(docs[0].title) <= MAX_TITLE_CHARS
    assert docs[0].title.startswith("Titel Titel")


def test_text_without_sentence_ends_is_cut_into_capped_sentences_and_passages() -> None:
    text = "Een regel zonder einde\n\n" + "woord " * 200_000 + "\n\n" + "x" * 5_000 + "\n\nEen zin. Nog een zin."
    start = time.perf_counter()
    sents = [s for p in paragraphs(text) for s in sentences(text, *p)]
    chunks = chunk_text(text, 600, 1)
    assert time.perf_counter() - start < 10
    assert max(e - s for s, e in sents) <= MAX_SENTENCE_CHARS
    assert max(c.end - c.start for c in chunks) <= max(600, MAX_SENTENCE_CHARS)
    assert all(text[s:e] == text[s:e].strip() and text[s:e] for s, e in sents)
    # cut at whitespace where there is any: no word is split
    assert all(text[s:e].split(" ")[-1] == "woord" for s, e in sents if text[s:e].startswith("woord"))
    assert "".join(text[s:e] for s, e in sents if text[s] == "x") == "x" * 5_000


# -- bug 15: wrong types in JSON and YAML, unclosed front matter ----------------------------------


@pytest.mark.parametrize(
    "row, field",
    [
        ({"title": ["lijst", "als", "titel"], "text": GOOD}, "title"),
        ({"title": "Goed", "text": ["tekst", "als", "lijst", GOOD]}, "text"),
        ({"title": "Goed", "text": GOOD, "language": 12}, "language"),
        ({"title": "Goed", "text": GOOD, "language": ["nl"]}, "language"),
        ({"title": "Goed", "text": GOOD, "language": "12"}, "language"),
        ({"title": "Goed", "text": GOOD, "url": 12}, "url"),
        ({"title": "Goed", "text": GOOD, "date": 20240101}, "date"),
        ({"title": "Goed", "text": GOOD, "source": {"naam": "x"}}, "source"),
        ({"id": {"nested": 1}, "title": "Goed", "text": GOOD}, "id"),
        ({"title": True, "text": GOOD}, "title"),
    ],
)
def test_jsonl_fields_of_the_wrong_type_are_refused_by_name(tmp_path: Path, row: dict, field: str) -> None:
    docs, errors = _load(_write(tmp_path, "types.jsonl", json.dumps(row) + "\n"))
    assert not docs and len(errors) == 1
    assert errors[0].startswith("line 1") and f"'{field}'" in errors[0]


def test_jsonl_numbers_as_title_and_id_are_read_as_text(tmp_path: Path) -> None:
    docs, errors = _load(_write(tmp_path, "n.jsonl", json.dumps({"id": 7, "title": 1984, "text": GOOD, "language": "en"}) + "\n"))
    assert not errors and docs[0].title == "1984" and docs[0].key.endswith("#7") and docs[0].language == "en"


@pytest.mark.parametrize(
    "front, field",
    [("title: {a: 1}", "title"), ("title: Goed\nlanguage: 12", "language"), ("title: Goed\nurl: [1, 2]", "url"), ("title: [een, twee]", "title")],
)
def test_front_matter_fields_of_the_wrong_type_are_refused_by_name(tmp_path: Path, front: str, field: str) -> None:
    docs, errors = _load(_write(tmp_path, "types.md", f"---\n{front}\n---\n" + GOOD))
    assert not docs and len(errors) == 1 and f"'{field}'" in errors[0]


def test_front_matter_dates_and_numbers_are_text(tmp_path: Path) -> None:
    docs, errors = _load(_write(tmp_path, "ok.md", "---\ntitle: 1984\ndate: 2024-01-01\nlanguage: en\n---\n" + GOOD))
    assert not errors and (docs[0].title, docs[0].date, docs[0].language) == ("1984", "2024-01-01", "en")


def test_unclosed_front_matter_is_refused_not_titled_dashes(tmp_path: Path) -> None:
    docs, errors = _load(_write(tmp_path, "open.md", "---\ntitle: nooit gesloten\n" + GOOD))
    assert not docs and len(errors) == 1 and "front matter" in errors[0] and "---" in errors[0]


def test_empty_front_matter_is_no_front_matter(tmp_path: Path) -> None:
    docs, errors = _load(_write(tmp_path, "empty.md", "---\n---\n# Kop van het stuk\n" + GOOD))
    assert not errors and docs[0].title == "Kop van het stuk"


# -- bug 17: UTF-16 ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le-bom", "utf-16-be-bom", "utf-32"])
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_read(tmp_path: Path, encoding: str) -> None:
    text = "Titel in Unicode\n" + GOOD + "\nBron: Testkrant\n"
    if encoding.endswith("-bom"):
        data = ("\ufeff" + text).encode(encoding.removesuffix("-bom"))
    else:
        data = text.encode(encoding)
    docs, errors = _load(_write(tmp_path, "utf16.txt", data))
    assert not errors, errors
    assert docs[0].title == "Titel in Unicode" and docs[0].text == GOOD and docs[0].outlet == "Testkrant"


@pytest.mark.parametrize("name", ["noise.html", "noise.txt", "noise.md"])
def test_random_characters_without_a_nul_byte_are_refused_as_binary(tmp_path: Path, name: str) -> None:
    import random

    rng = random.Random(7)
    noise = "".join(chr(rng.randrange(1, 256)) for _ in range(4000))  # valid UTF-8 once encoded
    docs, errors = _load(_write(tmp_path, name, noise.encode("utf-8")))
    assert not docs and "binary" in str(errors), errors
    # A form feed or two (page breaks from a PDF converter) and a stray control do not make text binary.
    page = "Titel\n" + GOOD + "\f" + GOOD + "\x0b" + "\n"
    docs, errors = _load(_write(tmp_path, "pages.txt", page.encode("utf-8")))
    assert not errors and docs[0].title == "Titel", errors


# -- bug 16: an unreadable subfolder ---------------------------------------------------------------


def test_an_unreadable_subfolder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "geheim").mkdir(parents=True)
    _write(corpus, "goed.txt", "Goede titel\n" + GOOD)
    _write(corpus / "geheim", "verborgen.txt", "Verborgen\n" + GOOD)
    (corpus / "geheim").chmod(0)
    real_scandir = os.scandir

    def scandir(path=".") -> object:
        # root ignores the mode bits, so make the folder unreadable for this test in any case
        if os.fspath(path).endswith("geheim"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    try:
        docs, skipped, _ = read_documents([corpus])
    finally:
        (corpus / "geheim").chmod(0o755)
    assert [d.title for d in docs] == ["Goede titel"]
    assert len(skipped) == 1
    where, why = skipped[0]
    assert where.endswith("geheim") and "cannot read the folder" in why and "Permission denied" in why


# -- bug 6: a file name that is not UTF-8 ----------------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_ingested(make_bron: Callable, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _write(corpus, "goed.txt", "Goede titel\n" + GOOD)
    _write(corpus, b"caf\xe9.txt", "Bestandsnaam in Latin-1\n" + GOOD + " Naam.")
    bron = make_bron(corpus)
    titles = {a.title for a in bron.library.articles()}
    assert titles == {"Goede titel", "Bestandsnaam in Latin-1"}
    assert not list((tmp_path / "data").glob("tmp-*")) and not list((tmp_path / "data" / "segments").glob("tmp-*"))
    # the key is printable (and stable: a second ingest changes nothing)
    keys = set(bron.library.keys().values())
    assert any(k.endswith("caf\\xe9.txt") for k in keys)
    report = bron.ingest([corpus])
    assert report.unchanged == 2 and not report.changed and not report.skipped


# -- property-based: arbitrary Unicode never crashes the chunker or the loaders ----------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from embeddings.ingest import _split  # noqa: E402

# Pieces that hit the sentence rules: abbreviations, initials, numbers, quotes, line and paragraph breaks.
_PIECES = st.sampled_from(
    ["woord", "Zin", "dr.", "Dr.", "1.", "A.", "B.", "...", "…", "!", "?", ".", '"', "“", "»", "(", "\n", "\n\n", " \n \n",
     " ", "  ", "\t", "\r", "\u2028", "\u00a0", "x" * 40, "é", "😀", "\u0301", "\u202e", "\0"]
)
TEXTS = st.one_of(
    st.text(max_size=1500),
    st.lists(_PIECES, max_size=600).map("".join),
    # long runs without a sentence end, so the sentence cap is exercised
    st.lists(st.sampled_from(["woord", " ", "x" * 90, "\n"]), min_size=50, max_size=400).map("".join),
)
_LONE_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40) | st.text(_LONE_SURROGATES, max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, max_chars=st.integers(1, 1500), overlap=st.integers(0, 3))
def test_chunker_spans_are_exact_and_within_the_caps(text: str, max_chars: int, overlap: int) -> None:
    sents = [s for p in paragraphs(text) for s in sentences(text, *p)]
    for (start, end), after in zip(sents, sents[1:] + [(len(text), len(text))]):
        assert 0 <= start < end <= after[0]
        assert end - start <= MAX_SENTENCE_CHARS
        assert text[start:end] == text[start:end].strip()
    # sentences cover every character but whitespace
    assert "".join("".join(text[s:e].split()) for s, e in sents) == "".join(text.split())
    for chunk in chunk_text(text, max_chars, overlap):
        assert 0 <= chunk.start < chunk.end <= len(text)
        assert chunk.end - chunk.start <= max(max_chars, MAX_SENTENCE_CHARS)
        assert (chunk.start, chunk.end) == (chunk.sentences[0][0], chunk.sentences[-1][1])
        assert all(chunk.start <= s < e <= chunk.end for s, e in chunk.sentences)
    spans, rows = _split(Document("k", "t", text), max_chars, overlap)
    assert spans == sents
    # (0, -1): a passage of heading lines that are not sentences of their own
    assert all(0 <= first <= last < len(spans) or (first, last) == (0, -1) for _, _, first, last in rows)


def _file(kind: str, title: str, text: str, meta: object) -> tuple[str, bytes]:
    import html

    import yaml

    if kind == "txt":
        return "a.txt", (title + "\n" + text).encode("utf-8")
    if kind == "txt16":
        return "a.txt", (title + "\n" + text).encode("utf-16")
    if kind == "md":
        front = yaml.safe_dump({"title": title, "language": meta, "date": meta}, allow_unicode=True)
        return "a.md", ("---\n" + front + "---\n" + text).encode("utf-8")
    if kind == "md-raw":
        return "a.md", ("---\n" + title + "\n" + text).encode("utf-8")
    if kind == "jsonl":
        rows = [{"id": meta, "title": title, "text": text}, {"title": meta, "text": text, "language": meta, "url": meta}, meta]
        return "a.jsonl", "\n".join(json.dumps(r) for r in rows).encode("utf-8")
    if kind == "html":
        return "a.html", f"<html><body><article><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></article></body></html>".encode()
    return "a.html", (title + text).encode("utf-8")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["txt", "txt16", "md", "md-raw", "jsonl", "html", "html-raw"]),
    title=st.text(max_size=400),
    text=TEXTS,
    meta=JSON_VALUES,
)
def test_loaders_read_or_refuse_any_text(tmp_path: Path, kind: str, title: str, text: str, meta: object) -> None:
    name, data = _file(kind, title, text, meta)
    path = tmp_path / name
    path.write_bytes(data)
    for item in load_file(path):
        if isinstance(item, LoadError):
            assert str(item)
            continue
        assert isinstance(item, Document)
        assert 0 < len(item.title) <= MAX_TITLE_CHARS and "\n" not in item.title
        assert len(item.text) >= 20 and item.language
        for value in (item.key, item.title, item.text, item.outlet, item.date, item.url, item.language, item.origin):
            assert value is None or isinstance(value, str) and value.encode("utf-8")  # storable as UTF-8
