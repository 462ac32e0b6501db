"""SendGridBackend with the real `sendgrid` library against a recording server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import replace
from email.utils import formatdate

import orjson
import pytest

from delivery.backends import get_backend
from delivery.backends.sendgrid import (
    SendGridBackend,
    blamed_personalizations,
    describe_errors,
    encode_body,
    provider_errors,
    rate_limit_wait,
)
from delivery.types import EmailBackend
from drip.errors import ConfigurationError
from tests.delivery.sendgrid_mock import (
    API_KEY,
    SHARED,
    FakeTime,
    Reply,
    SendGridMock,
    closed_port,
    message,
    sendgrid_error,
)


@pytest.fixture
def mock():
    with SendGridMock() as server:
        yield server


@pytest.fixture
def fake_time():
    return FakeTime()


def make_backend(settings, host: str, fake_time: FakeTime, **kwargs) -> SendGridBackend:
    s = settings.with_(sendgrid_api_key=API_KEY, sendgrid_host=host, sendgrid_timeout=kwargs.pop("timeout", 5.0))
    return SendGridBackend(
        s, sleep=fake_time.sleep, clock=fake_time.monotonic, wall_clock=fake_time.wall, rng=random.Random(7), **kwargs
    )


@pytest.fixture
def backend(settings, mock, fake_time):
    with make_backend(settings, mock.url, fake_time) as b:
        yield b


# -- construction


def test_missing_api_key_is_a_configuration_error(settings):
    with pytest.raises(ConfigurationError, match="SENDGRID_API_KEY is not set"):
        SendGridBackend(settings.with_(sendgrid_api_key=""))


def test_registry_builds_it_and_it_fits_the_protocol(settings):
    b = get_backend(settings.with_(sendgrid_api_key=API_KEY), "sendgrid")
    assert isinstance(b, SendGridBackend) and isinstance(b, EmailBackend)
    assert b.name == "sendgrid" and b.uses_shared_content is True


def test_a_malformed_key_is_refused_without_showing_it(settings):
    bad = API_KEY + "\r\nX-Injected: 1"
    with pytest.raises(ConfigurationError) as info:
        SendGridBackend(settings.with_(sendgrid_api_key=bad))
    assert API_KEY not in str(info.value) and "not shown" in str(info.value)


def test_host_must_be_http_and_timeout_positive(settings):
    s = settings.with_(sendgrid_api_key=API_KEY)
    with pytest.raises(ConfigurationError, match="https://"):
        SendGridBackend(s.with_(sendgrid_host="api.sendgrid.com"))
    with pytest.raises(ConfigurationError, match="timeout"):
        SendGridBackend(s.with_(sendgrid_timeout=0))


def test_the_library_client_gets_an_explicit_timeout(settings, mock, fake_time):
    b = make_backend(settings, mock.url, fake_time, timeout=3.5)
    assert b._client.client.timeout == 3.5  # the library's default is None: a stall would hang


def test_repr_does_not_show_the_key(backend):
    assert API_KEY not in repr(backend) and "SendGridBackend" in repr(backend)


# -- grouping and the happy path


def test_group_splits_by_content_and_by_one_thousand(backend):
    other = replace(SHARED, key="step:8:v1", html="<p>other</p>")
    msgs = [message(i) for i in range(2500)] + [message(3000, other), message(4000, shared=None)]
    groups = [list(g) for g in backend.group(msgs)]
    assert [len(g) for g in groups] == [1000, 1000, 500, 1, 1]
    assert [m.delivery_id for g in groups[:3] for m in g] == [1000 + i for i in range(2500)]


def test_interleaved_contents_and_senders_group_apart_in_first_seen_order(backend):
    """The same content object with another sender, or equal content in another object: the
    identity shortcut for runs of one step must give what the request key gives."""
    other = replace(SHARED, key="step:8:v1", html="<p>other</p>")
    equal_copy = replace(SHARED)  # equal content, another object: same request
    msgs = [
        message(1), message(2, other), message(3), message(4, from_name="Another Clinic"),
        message(5, equal_copy), message(6, other), message(7, categories=("newsletter",)), message(8),
    ]
    groups = [[m.delivery_id - 1000 for m in g] for g in backend.group(msgs)]
    assert groups == [[1, 3, 5, 8], [2, 6], [4], [7]]


def test_2500_recipients_go_in_three_requests_in_order(backend, mock):
    msgs = [message(i) for i in range(2500)]
    results = backend.send_batch(msgs)

    assert [len(r.json["personalizations"]) for r in mock.requests] == [1000, 1000, 500]
    sent = [p for r in mock.requests for p in r.json["personalizations"]]
    # Order kept (the library's Mail.add_personalization would have reversed it) and every
    # recipient's own delivery id, substitutions and unsubscribe header.
    for i, p in enumerate(sent):
        assert p["to"] == [{"email": f"patient{i}@example.com", "name": f"Patient {i}"}]
        assert p["custom_args"] == {"delivery_id": str(1000 + i)}
        assert p["substitutions"] == {"-name-": f"Patient {i}", "-unsubscribe-": f"https://clinic.test/u/token-{i}"}
        assert p["headers"]["List-Unsubscribe"] == f"<https://clinic.test/u/token-{i}>"
    assert all(r.json["content"][0]["value"] == SHARED.text for r in mock.requests)

    assert [r.delivery_id for r in results] == [m.delivery_id for m in msgs]
    assert all(r.ok for r in results)
    # message id per request, from the X-Message-Id header
    assert {r.message_id for r in results[:1000]} == {"msg-0"}
    assert {r.message_id for r in results[2000:]} == {"msg-2"}


def test_request_is_authorised_with_the_bearer_key(backend, mock):
    backend.send_batch([message(1)])
    (req,) = mock.requests
    assert req.method == "POST" and req.path == "/v3/mail/send"
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"


def test_the_body_goes_as_ready_json_and_odd_text_still_encodes(backend, mock):
    """orjson serializes the body; what it refuses (a lone surrogate) falls back to the stdlib
    encoder instead of failing the whole group."""
    assert json.loads(encode_body({"a": "Zoë 李 🙂", "n": [1, None]})) == {"a": "Zoë 李 🙂", "n": [1, None]}
    assert json.loads(encode_body({"a": "bad \udc80"})) == {"a": "bad \udc80"}
    results = backend.send_batch([message(1, name="Zoë \udc80"), message(2)])
    assert all(r.ok for r in results) and len(mock.requests) == 1
    assert [p["to"][0]["email"] for p in mock.requests[0].json["personalizations"]] == [
        "patient1@example.com", "patient2@example.com"]
    assert mock.requests[0].json["personalizations"][1]["to"][0]["name"] == "Patient 2"


def test_the_body_is_sent_as_orjsons_bytes_and_never_formatted_into_a_log_line(backend, mock, caplog):
    """The library formats `request.data` into a DEBUG line before logging decides anything; the
    body's bytes format as their size, so no 400 KB repr is built and no address lands in it."""
    body = encode_body({"personalizations": [{"to": [{"email": "zoë@example.com"}]}]})
    assert body.encode("utf-8") is body and body.encode("UTF8") == orjson.dumps(json.loads(body))
    with pytest.raises(ValueError, match="UTF-8"):
        body.encode("utf-16")  # the bytes are UTF-8: any other answer would be wrong
    line = "PAYLOAD: {data}".format(data=body.encode("utf-8"))
    assert "zoë" not in line and "example.com" not in line and f"{len(body):,} bytes" in line
    assert "example.com" not in repr(body) + str(body) + f"{body}"

    caplog.set_level(logging.DEBUG, logger="python_http_client.client")
    backend.send_batch([message(1, name="Zoë Quinn")])
    sent = mock.requests[0].body
    assert json.loads(sent)["personalizations"][0]["to"][0] == {"email": "patient1@example.com", "name": "Zoë Quinn"}
    assert "Zoë".encode() in sent  # UTF-8 as it is, not \u escapes
    assert "PAYLOAD:" in caplog.text and "patient1@example.com" not in caplog.text


def test_a_message_without_shared_content_goes_alone(backend, mock):
    results = backend.send_batch([message(1), message(2, shared=None), message(3)])
    assert [r.recipients for r in mock.requests] == [
        ["patient1@example.com", "patient3@example.com"],
        ["patient2@example.com"],
    ]
    assert mock.requests[1].json["content"][1] == {"type": "text/html", "value": "<p>Hello Patient 2</p>"}
    assert all(r.ok for r in results)


def test_a_rejected_message_does_not_hold_back_the_rest(backend, mock):
    results = {r.delivery_id: r for r in backend.send_batch([message(1), message(2, to_email="nope"), message(3)])}
    assert mock.requests[0].recipients == ["patient1@example.com", "patient3@example.com"]
    assert results[1001].ok and results[1003].ok
    assert not results[1002].ok and not results[1002].transient
    assert "recipient address" in results[1002].error


def test_a_malformed_message_fails_its_group_and_keeps_earlier_results(backend, mock):
    other = replace(SHARED, key="step:8:v1", html="<p>other</p>")
    results = backend.send_batch([message(1), message(2, other, to_email=None), message(3)])
    by_id = {r.delivery_id: r for r in results}
    assert by_id[1001].ok and by_id[1003].ok  # sent in the first request, before the bad group
    assert not by_id[1002].ok and "internal error" in by_id[1002].error
    assert mock.accepted_recipients() == ["patient1@example.com", "patient3@example.com"]


# -- 429


def test_429_storm_then_success_sends_every_email_exactly_once(backend, mock, fake_time):
    mock.script(*[Reply(429, {"errors": [{"message": "too many requests"}]}, {"Retry-After": "7"})] * 3)
    msgs = [message(i) for i in range(1500)]
    results = backend.send_batch(msgs)

    assert all(r.ok for r in results)
    accepted = mock.accepted_recipients()
    assert sorted(accepted) == sorted(m.to_email for m in msgs)
    assert len(accepted) == len(set(accepted)) == 1500
    assert fake_time.sleeps == [7.0, 7.0, 7.0]
    assert [r.status for r in mock.requests] == [429, 429, 429, 202, 202]


def test_429_wait_comes_from_x_ratelimit_reset_and_is_capped(backend, mock, fake_time):
    reset = int(fake_time.wall() + 12)
    mock.script(Reply(429, headers={"X-RateLimit-Reset": str(reset)}), Reply(429, headers={"Retry-After": "3600"}))
    assert all(r.ok for r in backend.send_batch([message(1)]))
    assert fake_time.sleeps == [pytest.approx(12.0), 60.0]


def test_429_that_does_not_stop_leaves_rows_due_with_retry_after(settings, mock, fake_time):
    b = make_backend(settings, mock.url, fake_time, max_rate_limit_waits=2)
    mock.script(*[Reply(429, headers={"Retry-After": "5"})] * 3)
    results = b.send_batch([message(1), message(2)])
    assert all(not r.ok and r.transient and r.retry_after == 5.0 for r in results)
    assert "429" in results[0].error
    assert mock.accepted() == [] and len(mock.requests) == 3


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"Retry-After": "2.5"}, 2.5),
        ({"Retry-After": formatdate(1000 + 30, usegmt=True)}, 30.0),
        ({"X-RateLimit-Reset": "1045"}, 45.0),
        ({"Retry-After": "soon", "X-RateLimit-Reset": "1003"}, 3.0),
        ({"X-RateLimit-Reset": "900"}, 0.0),  # already past
        ({"Retry-After": "9999"}, 60.0),  # capped
        ({}, 1.0),
    ],
)
def test_rate_limit_wait(headers, expected):
    assert rate_limit_wait(headers, now=1000.0, cap=60.0) == pytest.approx(expected)


# -- 5xx, timeouts, refused connections


def test_5xx_burst_leaves_rows_transient_then_a_later_send_succeeds(backend, mock, fake_time):
    mock.script(*[Reply(500, "upstream exploded")] * 4)
    msgs = [message(i) for i in range(3)]
    first = backend.send_batch(msgs)
    assert all(not r.ok and r.transient for r in first)
    assert "500" in first[0].error and "after 4 attempts" in first[0].error
    assert mock.accepted() == []
    # exponential backoff with jitter, bounded: 3 waits between 4 attempts
    assert len(fake_time.sleeps) == 3
    assert 0.25 <= fake_time.sleeps[0] <= 0.5 and 0.5 <= fake_time.sleeps[1] <= 1.0 and 1.0 <= fake_time.sleeps[2] <= 2.0

    second = backend.send_batch(msgs)  # the dispatcher's later retry of the rows that stayed due
    assert all(r.ok for r in second)
    assert sorted(mock.accepted_recipients()) == sorted(m.to_email for m in msgs)


def test_one_5xx_then_202_is_retried_inside_the_call(backend, mock):
    mock.script(Reply(503))
    assert all(r.ok for r in backend.send_batch([message(1)]))
    assert [r.status for r in mock.requests] == [503, 202]


def test_timeout_is_transient(settings, mock, fake_time):
    b = make_backend(settings, mock.url, fake_time, timeout=0.2, max_attempts=2)
    mock.script(Reply(504, stall=3), Reply(504, stall=3))
    (result,) = b.send_batch([message(1)])
    assert not result.ok and result.transient
    assert "timed out" in result.error
    assert len(mock.requests) == 2


def test_refused_connection_is_transient(settings, fake_time):
    b = make_backend(settings, f"http://127.0.0.1:{closed_port()}", fake_time)
    (result,) = b.send_batch([message(1)])
    assert not result.ok and result.transient
    assert "could not reach SendGrid" in result.error and "after 4 attempts" in result.error


def test_an_outage_stops_the_batch_instead_of_trying_every_group(backend, mock):
    other = replace(SHARED, key="step:8:v1", html="<p>other</p>")
    mock.script(*[Reply(500)] * 4)
    results = backend.send_batch([message(1), message(2, other)])
    assert len(mock.requests) == 4  # the second group was not tried against a failing SendGrid
    assert results[1].transient and results[1].error.startswith("not attempted: ")


def test_retry_budget_bounds_the_time_one_batch_spends(settings, mock, fake_time):
    b = make_backend(settings, mock.url, fake_time, retry_budget=0)
    mock.script(Reply(500), Reply(429, headers={"Retry-After": "1"}))
    assert b.send_batch([message(1)])[0].transient
    assert len(mock.requests) == 1 and fake_time.sleeps == []


# -- 4xx


def test_400_is_permanent_with_sendgrid_text(backend, mock):
    mock.script(sendgrid_error("The from address does not match a verified Sender Identity.", "from"))
    results = backend.send_batch([message(1), message(2)])
    for r in results:
        assert not r.ok and not r.transient
        assert r.error == (
            "SendGrid refused the request (400): from: The from address does not match a verified Sender Identity."
        )
    assert len(mock.requests) == 1  # not retried


def test_400_naming_one_personalization_fails_only_that_recipient(backend, mock):
    mock.script(sendgrid_error("Does not contain a valid address.", "personalizations.1.to.0.email"))
    results = {r.delivery_id: r for r in backend.send_batch([message(0), message(1), message(2)])}
    assert not results[1001].ok and not results[1001].transient
    assert "Does not contain a valid address" in results[1001].error
    assert results[1000].ok and results[1002].ok
    assert mock.accepted_recipients() == ["patient0@example.com", "patient2@example.com"]


def test_401_keeps_rows_due_and_stops_the_batch(backend, mock):
    other = replace(SHARED, key="step:8:v1", html="<p>other</p>")
    mock.script(Reply(401, {"errors": [{"message": "The provided authorization grant is invalid"}]}))
    results = backend.send_batch([message(1), message(2, other)])
    assert all(not r.ok and r.transient for r in results)
    assert "API key" in results[0].error and len(mock.requests) == 1


def test_sendgrid_error_helpers():
    body = b'{"errors": [{"message": "bad", "field": "personalizations.2.to"}, {"message": "worse", "field": null}]}'
    errors = provider_errors(body)
    assert describe_errors(errors, body) == "personalizations.2.to: bad; worse"
    assert blamed_personalizations(errors) == {}  # one error is about the whole request
    assert blamed_personalizations(errors[:1]) == {2: "personalizations.2.to: bad"}
    assert provider_errors(b"<html>502</html>") == []
    assert describe_errors([], b"<html>\n502 Bad   Gateway</html>") == "<html> 502 Bad Gateway</html>"


# -- the key stays secret


def test_the_api_key_never_appears_in_errors_results_or_logs(settings, fake_time, caplog):
    caplog.set_level(logging.DEBUG)
    echo = f"invalid key Bearer {API_KEY} ({API_KEY})"  # a provider echoing our own header back

    with SendGridMock() as server:
        server.script(
            sendgrid_error(echo, "personalizations.0.to.0.email"),
            Reply(401, {"errors": [{"message": echo}]}),
            *[Reply(500, echo)] * 4,
            Reply(429, {"errors": [{"message": echo}]}, {"Retry-After": "1"}),
            sendgrid_error(echo),
        )
        b = make_backend(settings, server.url, fake_time, max_rate_limit_waits=0)
        results = []
        for _ in range(4):
            results += b.send_batch([message(1), message(2)])
    results += make_backend(settings, f"http://127.0.0.1:{closed_port()}", fake_time).send_batch([message(3)])

    with pytest.raises(ConfigurationError) as info:
        SendGridBackend(settings.with_(sendgrid_api_key=API_KEY + " \n"))

    assert len(results) == 9 and all(not r.ok and r.error for r in results)
    assert {r.transient for r in results} == {True, False}
    texts = [r.error for r in results] + [str(info.value), repr(b), caplog.text]
    assert all(API_KEY not in t for t in texts)
    assert "Bearer [redacted]" in caplog.text  # the HTTP client's DEBUG header line, redacted
    assert "patient1@example.com" not in caplog.text  # and its DEBUG body line is not logged


# -- through the dispatcher


def test_dispatcher_sends_a_step_to_many_patients_in_one_request(sqlite_runtime, mock, fake_time):
    """Real renderer + dispatcher + backend: one request per step, rows sent with the message id,
    and SendGrid's substitution of each personalization gives a complete personal email."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import select

    from campaigns.enrollment import enroll
    from delivery.dispatcher import Dispatcher
    from drip.models import Delivery
    from drip.runtime import Runtime
    from subscribers.tokens import TokenSigner
    from tests.factories import make_campaign, make_subscriber

    t0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)
    runtime = Runtime(
        settings=sqlite_runtime.settings.with_(sendgrid_api_key=API_KEY, sendgrid_host=mock.url),
        engine=sqlite_runtime.engine, sessions=sqlite_runtime.sessions, read_sessions=sqlite_runtime.read_sessions,
    )
    names = ["Ann, Smith", "Zoë \"Z\" O'Brien", "Bob <b>"]
    with runtime.sessions.begin() as s:
        campaign = make_campaign(s, n_items=1, every=timedelta(days=1))
        for i, name in enumerate(names):
            enroll(s, make_subscriber(s, f"p{i}@example.org", name=name), campaign, t0, clinic_tz="UTC")

    backend = make_backend(runtime.settings, mock.url, fake_time)
    dispatcher = Dispatcher(runtime, backend, clock=lambda: t0 + timedelta(minutes=1), rng=random.Random(1))
    report = dispatcher.tick()

    assert report.sent == 3 and len(mock.requests) == 1  # the first step, all three patients, one request
    (req,) = mock.requests
    body = req.json
    assert sorted(req.recipients) == ["p0@example.org", "p1@example.org", "p2@example.org"]
    with runtime.sessions() as s:
        sent = s.execute(select(Delivery.id, Delivery.status, Delivery.provider_message_id)
                         .where(Delivery.status == "sent")).all()
    assert {str(row.id) for row in sent} == {p["custom_args"]["delivery_id"] for p in body["personalizations"]}
    assert {row.provider_message_id for row in sent} == {"msg-0"}
    assert body["headers"] == {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    signer = TokenSigner(runtime.settings.secret_key)
    delivery_ids = set()
    for p in body["personalizations"]:
        unsubscribe = p["headers"]["List-Unsubscribe"].strip("<>")
        token = unsubscribe.split("/u/")[1]
        assert len(p["substitutions"]) == 3 and token in p["substitutions"].values()  # greeting x2, token
        claims = signer.read_unsubscribe(token)
        assert str(claims.delivery_id) == p["custom_args"]["delivery_id"]
        delivery_ids.add(claims.delivery_id)
        for part in body["content"]:
            personal = part["value"]
            for key, value in p["substitutions"].items():
                personal = personal.replace(key, value)
            assert "-drip_" not in personal  # every key had a value
            assert unsubscribe in personal and unsubscribe.replace("/u/", "/preferences/") in personal
    assert len(delivery_ids) == 3


def test_bench_cli_reports_rate_baseline_and_ratio(capsys):
    """`drip bench sendgrid` runs both paths (no timing assertions: the numbers are the bench's job)."""
    from bench import BENCHES
    from drip.cli import main

    assert BENCHES["sendgrid"] == "bench.sendgrid"
    try:
        main(["bench", "sendgrid", "--quick", "--json"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["bench"] == "sendgrid" and data["unit"] == "recipients/s"
    assert data["rate"] > 0 and data["baseline"] > 0 and data["ratio"] > 0
    assert data["recipients"] == 2000 and data["requests"] == 2  # one request per 1,000 recipients
