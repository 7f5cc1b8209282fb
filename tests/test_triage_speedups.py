"""handlers/_speedups.c: the triage hot paths in C give what the Python code gives.

The Python code is the reference (and runs where the extension could not be
built); CI builds the extension, so there both are compared."""

from __future__ import annotations

import dataclasses
import glob
import os
import random
import tracemalloc

import numpy as np
import pytest

from config.keywords import load_keywords, normalize
from handlers.speedups import speedups
from handlers.triage_setup import build_triage
from tests.triage_support import CORPUS, DATA, rows

native = speedups()
needs_native = pytest.mark.skipif(native is None, reason="handlers._speedups was not built (no C compiler)")


def test_the_extension_is_built_in_ci():
    if os.environ.get("CI") == "true":
        assert native is not None, "pip install -e . did not build handlers/_speedups.c"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_triage(load_keywords(), tmp_path_factory.mktemp("speedups-cache"))


@pytest.fixture(scope="module")
def pure(built):
    return dataclasses.replace(built, pure_python=True)


def _labelled_texts() -> list[str]:
    files = sorted(glob.glob(str(DATA / "*.jsonl"))) + sorted(glob.glob(str(CORPUS / "*.jsonl")))
    return [row["text"] for path in files for row in rows(os.path.basename(path))]


def _odd_texts(count: int = 3000) -> list[str]:
    """Random strings over what splits blocks, glues letters and digits, or is
    folded: whitespace and "\\r\\n", full-width forms, jieba's block symbols, a
    character outside the BMP."""
    alphabet = "阻工堵路施工许可证公安局村民青苗补偿 \r\n\t12ab.AB-_%#&+，、。！?abc0９　Ｐ𠮷é"
    rnd = random.Random(20261205)
    return ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40))) for _ in range(count)]


@pytest.fixture(scope="module")
def odd_texts() -> list[str]:
    return _odd_texts()


@pytest.fixture(scope="module")
def texts(odd_texts) -> list[str]:
    return _labelled_texts() + odd_texts


@needs_native
def test_tokens_are_jieba_tokens(built, texts):
    assert built._lexicon is not None
    for text in texts:
        norm = normalize(text)
        assert built.tokens(text) == built.tokenizer.lcut(norm, HMM=False), repr(text)


def test_python_tokens_are_jieba_tokens(pure, odd_texts):
    for text in odd_texts:  # the labelled ones: tests/test_triage.py
        norm = normalize(text)
        assert pure.tokens(text) == pure.tokenizer.lcut(norm, HMM=False), repr(text)


@needs_native
def test_model_rows_are_numpy_rows(built, texts):
    model = built.model
    for text in texts:
        norm = normalize(text)
        assert np.array_equal(model.rows(norm), model.rows(norm, pure_python=True)), repr(text)


@needs_native
def test_fold_full_width_is_the_translate_table():
    from config.keywords import _full_width

    everything = "".join(map(chr, range(1, 0x110000)))
    everything = everything.replace("\ud800", "")  # keep it encodable; surrogates are not text
    assert native.fold_full_width(everything) == everything.translate(_full_width())
    plain = "施工许可证还没批"
    assert native.fold_full_width(plain) is plain
    assert native.fold_full_width("ＰＭ２.５，　超标") == "PM2.5, 超标"


@needs_native
def test_classification_is_the_same_with_and_without_speedups(built, pure, texts):
    differ = [t for t in texts if built.classify(t) != pure.classify(t)]
    assert not differ, differ[:5]


def _with_prefixes(words: dict[str, int]) -> dict[str, int]:
    """A dictionary as jieba holds it: every prefix of a word is there, at 0 when
    it is not a word itself."""
    freq = dict(words)
    for word in words:
        for end in range(1, len(word)):
            freq.setdefault(word[:end], 0)
    return freq


@needs_native
def test_lexicon_edges():
    lexicon = native.Lexicon(_with_prefixes({"施工": 10, "许可证": 5, "长" * 600: 3}), 100)
    assert lexicon.cut("") == []
    assert lexicon.cut("施工许可证") == ["施工", "许可证"]
    assert lexicon.cut("ab 12\r\nx") == ["ab", " ", "12", "\r\n", "x"]
    assert lexicon.cut("长" * 600) == ["长" * 600]  # a word longer than the stack buffer
    with pytest.raises(TypeError):
        lexicon.cut(b"bytes")
    with pytest.raises(TypeError):
        native.Lexicon({1: 2}, 10)
    with pytest.raises(ValueError):
        native.Lexicon({}, 0)
    with pytest.raises(RuntimeError):
        lexicon.__init__({}, 10)


@needs_native
def test_gram_index_edges():
    from handlers.triage_model import gram_key

    keys = np.array(sorted(map(gram_key, ["阻", "阻工", "工", "0"])), dtype=np.int64)
    index = native.GramIndex(keys)
    found = np.frombuffer(index.rows("阻工123工"), dtype=np.int64)
    assert [int(keys[r]) for r in found] == sorted(map(gram_key, ["阻", "阻工", "工", "0"]))
    assert index.rows("") == b""
    assert native.GramIndex(np.array([], dtype=np.int64)).rows("阻工") == b""
    with pytest.raises(ValueError):
        native.GramIndex(np.array([0], dtype=np.int64))
    with pytest.raises(TypeError):
        native.GramIndex(np.array([1], dtype=np.int32))


@needs_native
def test_no_memory_is_kept_per_call(built):
    text = normalize("村民堵路三天了，施工许可证还没批，变压器容量不够，" * 5)
    model = built.model
    for _ in range(50):  # warm the memos first
        built.classify(text)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3000):
            built._lexicon.cut(text)
            model.rows(text)
            native.fold_full_width("，" + text)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown


@needs_native
def test_mark_tokens_is_the_python_one():
    from handlers.triage import _mark_tokens

    skip, other = object(), object()
    memo = {"a": skip, "b": other, "c": skip}
    tokens = ["a", "b", "c", "b", "a"]
    for keep in (None, {}, {"c": 1.0}):
        assert native.mark_tokens(tokens, memo, skip, keep) == _mark_tokens(tokens, memo, skip, keep)
    assert native.mark_tokens(tokens, memo, skip, {"c": 1.0}) == [(1, "b", other), (2, "c", skip), (3, "b", other)]
    assert native.mark_tokens(["a", "new"], memo, skip) is None
    assert _mark_tokens(["a", "new"], memo, skip) is None
    assert native.mark_tokens([], memo, skip) == []
