"""The one URL parser and password scrubber both the job store and the bot's records use."""

from __future__ import annotations

import pytest

from db.url import Dialect, database_dialect, describe, without_password


@pytest.mark.parametrize("url", ["postgresql://u:p@db:5432/x", "postgres://db/x",
                                 " postgresql://u@db/x "])
def test_both_postgresql_schemes_name_postgresql(url: str) -> None:
    assert database_dialect(url) is Dialect.POSTGRESQL


def test_empty_is_sqlite_and_other_schemes_are_refused_without_the_password() -> None:
    assert database_dialect("  ") is Dialect.SQLITE
    with pytest.raises(ValueError, match="not a mysql:// URL") as caught:
        database_dialect("mysql://u:s3cret@db/x")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ValueError, match=r"not a valid PostgreSQL URL \(invalid percent") as bad:
        database_dialect("postgresql://u:s3%cret@db/x")
    assert "s3" not in str(bad.value).split("(", 1)[1]


def test_the_password_is_scrubbed_plain_and_percent_encoded() -> None:
    url = "postgresql://u:p%40ss@db/x"
    said = without_password(f'connection to "{url}" failed for p@ss and p%40ss', url)
    assert "p@ss" not in said and "p%40ss" not in said and "***" in said


def test_a_url_too_broken_to_split_shows_nothing() -> None:
    assert without_password("bad: s3cret", "postgresql://u:s3cret@[db/x") == "…"


def test_describe_names_the_place_never_the_password() -> None:
    assert describe("postgresql://u:s3cret@db:6543/records") == "db:6543/records"
    assert describe("postgres:///records") == "localhost:5432/records"
