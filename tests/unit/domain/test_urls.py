"""URLs shown or logged keep where they lead and lose every credential they carry."""

from __future__ import annotations

import pytest

from mn_api.domain.urls import scrub_urls, without_credentials


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@cache:6379/0", "redis://cache:6379/0"),
        ("redis://:s3cret@cache:6379/0", "redis://cache:6379/0"),
        ("redis://user:s3/cret@cache:6379/0", "redis://cache:6379/0"),
        ("redis://cache:6379/0?Pass%77ord=s3cret&db=2", "redis://cache:6379/0?db=2"),
        ("https://h/in?access_token=s3cret&sig=s3cret&x=1#s3cret", "https://h/in?x=1"),
        ("https://h?api_key=s3cret", "https://h"),
        ("https://h:8443/users/@me?page=2", "https://h:8443/users/@me?page=2"),
        ("https://h?next=a@b", "https://h?next=a@b"),
        ("dns://8.8.8.8/core.internal:50051", "dns://8.8.8.8/core.internal:50051"),
        ("core:50051", "core:50051"),
    ],
)
def test_a_url_is_shown_without_credentials(url: str, shown: str) -> None:
    assert without_credentials(url) == shown


def test_every_url_in_free_text_loses_its_userinfo_and_query() -> None:
    text = (
        "could not reach redis://admin:s3cret@cache:6379/0?password=s3cret; "
        "POST https://bot:s3cret@hooks.example.com/in?token=s3cret answered 401 "
        "(see 'https://docs.example.com/a#b')"
    )
    scrubbed = scrub_urls(text)
    assert "s3cret" not in scrubbed
    assert scrubbed == (
        "could not reach redis://cache:6379/0?redacted; "
        "POST https://hooks.example.com/in?redacted answered 401 "
        "(see 'https://docs.example.com/a')"
    )
    assert scrub_urls("no url here: a@b?c") == "no url here: a@b?c"
