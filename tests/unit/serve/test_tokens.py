"""LOOPER_API_TOKENS parsing and lookup, and the CLI's refusal to start without tokens."""

from __future__ import annotations

import pytest

from looper_common import cli
from looper_common.serve.tokens import TokenError, parse_tokens, unknown_scopes


def test_unscoped_and_scoped_tokens():
    table = parse_tokens(" all1 , one:bp_a,one:bp_b, two:bp_a ")
    assert table.scope_of("all1") is None
    assert table.scope_of(b"all1") is None  # as read from a header
    assert table.scope_of("one") == frozenset({"bp_a", "bp_b"})
    assert table.scope_of("two") == frozenset({"bp_a"})
    assert table.scope_of("nope") is False
    assert table.scope_of("") is False
    assert table.scope_of("one:bp_a") is False  # the scope is not part of the token


def test_a_token_listed_unscoped_anywhere_may_use_every_blueprint():
    assert parse_tokens("t:bp_a,t").scope_of("t") is None
    assert parse_tokens("t,t:bp_a").scope_of("t") is None


def test_table_holds_digests_not_tokens():
    table = parse_tokens("s3cret-token")
    assert all(b"s3cret" not in key for key in table.scopes)
    assert "s3cret" not in repr(table)


@pytest.mark.parametrize("text", [None, "", " , ,", "tok:", ":bp", "to k"])
def test_bad_settings_are_refused_without_echoing_tokens(text):
    with pytest.raises(TokenError) as err:
        parse_tokens(text)
    assert "LOOPER_API_TOKENS" in str(err.value)
    if text:
        assert "to k" not in str(err.value) and "tok" not in str(err.value).replace("token", "")


def test_unknown_scopes_names_the_typo():
    assert unknown_scopes(parse_tokens("a:bp_a,b:bp_typo,c"), {"bp_a"}) == ["bp_typo"]
    assert unknown_scopes(parse_tokens("c"), {"bp_a"}) == []


def test_serve_refuses_to_start_without_tokens(monkeypatch, capsys):
    monkeypatch.delenv("LOOPER_API_TOKENS", raising=False)
    assert cli.main(["serve", "--port", "0"]) == 2
    assert "LOOPER_API_TOKENS is empty" in capsys.readouterr().err


def test_serve_refuses_a_scope_naming_an_unknown_blueprint(monkeypatch, capsys):
    monkeypatch.setenv("LOOPER_API_TOKENS", "tok:no_such_blueprint")
    assert cli.main(["serve", "--port", "0"]) == 2
    assert "no_such_blueprint" in capsys.readouterr().err


def test_serve_help_names_every_endpoint(capsys):
    assert cli.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("/v1/decisions", "/v1/decisions:batch", "/v1/observations", "/healthz", "/readyz",
                 "LOOPER_API_TOKENS", "--host", "127.0.0.1"):
        assert text in out
