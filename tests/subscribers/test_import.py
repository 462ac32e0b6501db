"""subscribers.importer: the CSV import policy, file quirks, duplicates, atomicity and streaming."""

from __future__ import annotations

import codecs
import csv
import io
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import func, select

from drip.db import make_engine, session_factory
from drip.errors import InputError
from drip.models import Base, Enrollment, Subscriber, SubscriberTag, Tag
from subscribers.importer import MAX_KEPT_ERRORS, ImportReport, RowError, import_csv
from subscribers.service import add_subscriber, clean_name, get_subscriber, tags_of
from tests.factories import make_campaign

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def write(tmp_path: Path, text: str, name: str = "people.csv", *, newline: str = "\n", bom: bool = False) -> Path:
    path = tmp_path / name
    data = text.replace("\n", newline).encode("utf-8")
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + data)
    return path


def count(rt, model=Subscriber) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def balanced(r: ImportReport) -> bool:
    return r.rows == r.created + r.updated + r.duplicates + r.skipped


def ten_thousand_with_one_bad(tmp_path: Path) -> tuple[Path, int]:
    """10,000 data rows; row 5,000 (file line 5,001) has no valid address. Returns (path, bad line)."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("email,name,tz,tags\n")
        for i in range(10_000):
            email = "not-an-address" if i == 4_999 else f"patient{i}@example.org"
            f.write(f"{email},Patient {i},{'Europe/Paris' if i % 2 else ''},patients\n")
    return path, 5_001


# --- the policy: skip (default) and refuse (--strict) ---------------------------------------


def test_skip_mode_keeps_the_good_rows_and_names_the_bad_line(runtime, tmp_path):
    path, bad_line = ten_thousand_with_one_bad(tmp_path)
    report = import_csv(runtime, path, now=NOW)
    assert (report.rows, report.created, report.skipped) == (10_000, 9_999, 1)
    assert not report.refused and balanced(report)
    [error] = report.errors
    assert (error.line, error.field) == (bad_line, "email")
    assert "not-an-address" in error.message
    assert count(runtime) == 9_999
    assert count(runtime, SubscriberTag) == 9_999
    with runtime.sessions() as s:
        assert get_subscriber(s, "patient1@example.org").tz == "Europe/Paris"
        assert get_subscriber(s, "patient9999@example.org").name == "Patient 9999"


def test_strict_mode_imports_nothing_when_one_row_is_bad(runtime, tmp_path):
    path, bad_line = ten_thousand_with_one_bad(tmp_path)
    report = import_csv(runtime, path, mode="refuse", now=NOW)
    assert report.refused and report.imported == 0
    assert [(e.line, e.field) for e in report.errors] == [(bad_line, "email")]
    assert count(runtime) == 0 and count(runtime, Tag) == 0


def test_strict_mode_imports_a_clean_file(runtime, tmp_path):
    path = write(tmp_path, "email,name\na@example.org,A\nb@example.org,B\n")
    report = import_csv(runtime, path, mode="refuse", now=NOW)
    assert (report.refused, report.created) == (False, 2)
    assert count(runtime) == 2


def test_unknown_mode_is_refused(sqlite_runtime, tmp_path):
    with pytest.raises(ValueError):
        import_csv(sqlite_runtime, write(tmp_path, "email\n"), mode="maybe")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "row,field",
    [
        ("bad@,Ann,,", "email"),
        (",Ann,,", "email"),
        ("ann@example.org,Ann,Mars/Olympus,", "tz"),
        ("ann@example.org,Ann,,ok;" + "x" * 101, "tags"),
        ("ann@example.org,Ann", "row"),
        ("ann@example.org,Ann,,,extra", "row"),
        ('ann@example.org,"Ann "x" Lee",,', "row"),  # not valid CSV: text after a closing quote
    ],
)
def test_each_kind_of_bad_row_is_reported_with_its_field(sqlite_runtime, tmp_path, row, field):
    path = write(tmp_path, f"email,name,tz,tags\nok@example.org,Ok,,\n{row}\nok2@example.org,Ok2,,\n")
    report = import_csv(sqlite_runtime, path, now=NOW)
    assert [(e.line, e.field) for e in report.errors] == [(3, field)]
    assert (report.created, report.skipped) == (2, 1) and balanced(report)


def test_a_row_with_two_problems_reports_both_and_counts_once(sqlite_runtime, tmp_path):
    report = import_csv(sqlite_runtime, write(tmp_path, "email,tz\nbad,Nowhere/Else\n"), now=NOW)
    assert [(e.line, e.field) for e in report.errors] == [(2, "email"), (2, "tz")]
    assert (report.skipped, report.error_count) == (1, 2)


def test_an_open_quote_is_reported_at_its_first_line_not_silently_joined(sqlite_runtime, tmp_path):
    text = 'email,name\na@example.org,"Ann\nb@example.org,Bob\nc@example.org,Cy"\nd@example.org,Dee\n'
    report = import_csv(sqlite_runtime, write(tmp_path, text), now=NOW)
    assert [(e.line, e.field) for e in report.errors] == [(2, "name")]
    assert "lines 2-4" in report.errors[0].message
    assert report.created == 1  # d@ only; the swallowed rows are inside the bad record
    assert report.errors[0] == RowError(2, "name", report.errors[0].message)


def test_an_open_quote_at_the_end_of_the_file_is_a_row_error(sqlite_runtime, tmp_path):
    report = import_csv(sqlite_runtime, write(tmp_path, 'email,name\na@example.org,A\nb@example.org,"B\n'), now=NOW)
    assert [(e.line, e.field) for e in report.errors] == [(3, "row")]
    assert report.created == 1


def test_only_the_first_errors_are_kept_but_all_are_counted(sqlite_runtime, tmp_path):
    bad = MAX_KEPT_ERRORS + 5
    text = "email\n" + "".join(f"bad{i}\n" for i in range(bad)) + "good@example.org\n"
    report = import_csv(sqlite_runtime, write(tmp_path, text), now=NOW)
    assert len(report.errors) == MAX_KEPT_ERRORS
    assert (report.error_count, report.skipped, report.created) == (bad, bad, 1)


# --- duplicates and re-imports ----------------------------------------------------------------


def test_duplicates_in_any_case_become_one_subscriber_later_values_win(runtime, tmp_path):
    text = (
        "email,name,tz,tags\n"
        "Ann@Example.org,Ann,Europe/Paris,a\n"
        "bob@example.org,Bob,,\n"
        "ANN@example.ORG,,,b\n"  # empty name/zone keep the earlier ones, tags add up
        "ann@example.org,Ann Lee,Asia/Tokyo,\n"
    )
    report = import_csv(runtime, write(tmp_path, text), now=NOW)
    assert (report.created, report.duplicates, report.updated) == (2, 2, 0) and balanced(report)
    with runtime.sessions() as s:
        ann = get_subscriber(s, "ann@example.org")
        assert (ann.email, ann.name, ann.tz) == ("Ann@example.org", "Ann Lee", "Asia/Tokyo")
        assert tags_of(s, [ann.id])[ann.id] == ["a", "b"]
    assert count(runtime) == 2


def test_duplicates_across_chunks_are_counted_as_duplicates_not_updates(runtime, tmp_path):
    text = "email,name\na@example.org,A\nb@example.org,B\nc@example.org,C\nA@EXAMPLE.org,A2\n"
    report = import_csv(runtime, write(tmp_path, text), now=NOW, chunk_rows=2)
    assert (report.created, report.duplicates, report.updated) == (3, 1, 0) and balanced(report)
    with runtime.sessions() as s:
        assert get_subscriber(s, "a@example.org").name == "A2"


def test_reimport_updates_instead_of_duplicating_and_keeps_status(runtime, tmp_path):
    with runtime.sessions.begin() as s:
        add_subscriber(s, "gone@example.org", name="Gone", now=NOW).status = "unsubscribed"
    path = write(tmp_path, "email,name,tz,tags\ngone@example.org,,,x\nnew@example.org,New,,x\n")
    first = import_csv(runtime, path, now=NOW)
    second = import_csv(runtime, path, now=NOW)
    assert (first.created, first.updated, first.tagged) == (1, 1, 2)
    assert (second.created, second.updated, second.tagged) == (0, 2, 0)
    assert count(runtime) == 2 and count(runtime, SubscriberTag) == 2
    with runtime.sessions() as s:
        gone = get_subscriber(s, "gone@example.org")
        assert (gone.name, gone.status) == ("Gone", "unsubscribed")  # not resubscribed, name not wiped
        new = get_subscriber(s, "new@example.org")
        assert (new.status, new.consent_source, new.consent_at, new.created_at) == ("active", "import", NOW, NOW)


def test_tags_column_separators_and_extra_tags(runtime, tmp_path):
    path = write(tmp_path, "email,tags\na@example.org,vip; spring|  autumn ;;\nb@example.org,\n")
    report = import_csv(runtime, path, tags=("imported", "vip"), now=NOW)
    assert report.tagged == 6
    with runtime.sessions() as s:
        got = tags_of(s, [get_subscriber(s, "a@example.org").id, get_subscriber(s, "b@example.org").id])
    assert sorted(got.values()) == [["autumn", "imported", "spring", "vip"], ["imported", "vip"]]


def test_a_bad_extra_tag_is_refused_before_reading(sqlite_runtime, tmp_path):
    with pytest.raises(InputError, match="--tag"):
        import_csv(sqlite_runtime, write(tmp_path, "email\na@example.org\n"), tags=("",))
    assert count(sqlite_runtime) == 0


def test_import_with_a_campaign_tag_enrolls_new_patients_once(runtime, tmp_path):
    with runtime.sessions.begin() as s:
        campaign = make_campaign(s, "onboarding")
        s.add(Tag(name="new-patients", campaign_id=campaign.id))
    path = write(tmp_path, "email,tags\na@example.org,new-patients\nb@example.org,other\n")
    first = import_csv(runtime, path, now=NOW)
    second = import_csv(runtime, path, now=NOW)  # a list imported twice must not restart the campaign
    assert (first.enrolled, second.enrolled) == (1, 0)
    assert count(runtime, Enrollment) == 1


# --- file quirks ----------------------------------------------------------------------------


def test_crlf_bom_header_case_quotes_and_extra_columns(sqlite_runtime, tmp_path):
    text = (
        ' EMAIL ,Full Name,Phone,TimeZone,Name\n'
        'a@example.org,ignored,555,europe/paris,"Lee, Ann ""Annie"""\n'
        '\n'  # blank lines and all-blank rows are passed over
        ',,,,\n'
        'b@example.org,,,,"Smith,\tBob\x07"\n'
    )
    path = write(tmp_path, text, newline="\r\n", bom=True)
    report = import_csv(sqlite_runtime, path, now=NOW)
    assert (report.rows, report.created, report.skipped) == (2, 2, 0)
    assert report.ignored_columns == ("Full Name", "Phone")
    with sqlite_runtime.sessions() as s:
        a, b = get_subscriber(s, "a@example.org"), get_subscriber(s, "b@example.org")
        assert (a.name, a.tz) == ('Lee, Ann "Annie"', "Europe/Paris")
        assert b.name == "Smith, Bob"  # control characters from the file never reach a name


def test_header_only_file_imports_nothing_without_error(sqlite_runtime, tmp_path):
    report = import_csv(sqlite_runtime, write(tmp_path, "email,name\n"), now=NOW)
    assert (report.rows, report.created, report.errors) == (0, 0, [])


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "file is empty"),
        (b"\n\n", "file is empty"),
        (b"name,tz\nAnn,UTC\n", "people.csv:1: no 'email' column"),
        (b"ann@example.org,Ann\n", "header naming the columns"),
        (b"email;name\nann@example.org;Ann\n", "separated by commas"),
        (b"email,E-Mail\na@example.org,a@example.org\n", "two columns mean 'email'"),
        (b"email,name\na@example.org,Ren\xe9\n", "people.csv:2: not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "people.csv:1: not UTF-8"),
    ],
)
def test_unusable_files_are_one_line_input_errors_naming_file_and_line(sqlite_runtime, tmp_path, content, message):
    path = tmp_path / "people.csv"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        import_csv(sqlite_runtime, path, now=NOW)
    text = str(info.value)
    assert message in text and "people.csv" in text and "\n" not in text
    assert count(sqlite_runtime) == 0


def test_missing_file_and_folder(sqlite_runtime, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        import_csv(sqlite_runtime, tmp_path / "nope.csv")
    with pytest.raises(InputError, match="folder"):
        import_csv(sqlite_runtime, tmp_path)


def test_a_bad_byte_late_in_the_file_leaves_the_database_untouched(runtime, tmp_path):
    path = tmp_path / "late.csv"
    good = "".join(f"p{i}@example.org,P{i}\n" for i in range(50)).encode()
    path.write_bytes(b"email,name\n" + good + b"late@example.org,Ren\xe9\n")
    with pytest.raises(InputError, match=r"late.csv:52: not UTF-8"):
        import_csv(runtime, path, now=NOW, chunk_rows=10)  # four chunks were written before the bad line
    assert count(runtime) == 0


def test_a_runaway_line_stops_early(sqlite_runtime, tmp_path):
    path = tmp_path / "huge.csv"
    path.write_bytes(b"email\n" + b"x" * (2 << 20))
    with pytest.raises(InputError, match="huge.csv:2: line longer than"):
        import_csv(sqlite_runtime, path)


# --- streaming --------------------------------------------------------------------------------


def _rows_file(tmp_path: Path, n: int, name: str) -> Path:
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("email,name,tz\n")
        for i in range(n):
            f.write(f"p{i}@example.org,Patient number {i},America/New_York\n")
    return path


def test_progress_reports_bytes_as_the_file_is_read(sqlite_runtime, tmp_path):
    path = _rows_file(tmp_path, 3_000, "p.csv")
    seen: list[tuple[str, int, int]] = []
    import_csv(sqlite_runtime, path, mode="refuse", chunk_rows=500, progress=lambda *a: seen.append(a))
    size = path.stat().st_size
    for phase in ("checking", "importing"):
        done = [d for p, d, t in seen if p == phase]
        assert done == sorted(done) and done[-1] == size
        assert len(done) >= 6 and done[0] < size / 4  # read a chunk at a time, not all at once


def test_memory_stays_flat_as_the_file_grows(sqlite_runtime, tmp_path):
    small, large = _rows_file(tmp_path, 1_000, "small.csv"), _rows_file(tmp_path, 5_000, "large.csv")
    import_csv(sqlite_runtime, _rows_file(tmp_path, 600, "warm.csv"), chunk_rows=500)  # compile caches first

    def peak(path: Path) -> int:
        tracemalloc.start()
        try:
            import_csv(sqlite_runtime, path, chunk_rows=500)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small_peak, large_peak = peak(small), peak(large)
    assert large.stat().st_size > 4.5 * small.stat().st_size
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)  # 5x the rows, not 5x the memory


# --- property: any names, repeated addresses in any case -----------------------------------------

_POOL = ["ann@example.org", "ANN@Example.org", "bob@example.org", "bad-address", " Dee@Example.org ", "x@@example.org"]


@given(st.lists(st.tuples(st.sampled_from(_POOL), st.text(max_size=30)), max_size=25))
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_file_counts_balance_lines_are_exact_and_later_names_win(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("prop")
    engine = make_engine(f"sqlite:///{folder / 'p.sqlite3'}")
    Base.metadata.create_all(engine)
    sessions = session_factory(engine)
    buffer = io.StringIO()
    out = csv.writer(buffer)  # quotes commas, quotes and line breaks the way spreadsheets do
    out.writerow(["email", "name"])
    expected_errors, final_names, line = [], {}, 2
    for email, name in rows:
        before = buffer.tell()
        out.writerow([email, name])
        if "\n" in name:
            expected_errors.append((line, "name"))
        elif email.strip() in ("bad-address", "x@@example.org"):
            expected_errors.append((line, "email"))
        else:
            key = email.strip().lower()
            final_names[key] = clean_name(name) or final_names.get(key, "")
        line += buffer.getvalue()[before:].count("\n")
    path = folder / "p.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")

    report = import_csv(sessions, path, now=NOW, chunk_rows=4)
    engine_rows = {s.email_key: s.name for s in sessions().scalars(select(Subscriber))}
    engine.dispose()
    assert balanced(report) and report.rows == len(rows)
    assert [(e.line, e.field) for e in report.errors] == expected_errors
    assert engine_rows == final_names
