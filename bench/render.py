"""`drip bench render`: personalised emails (HTML + text) per second for the seed's sequence.

drip: compile each step once (Jinja -> MJML -> css-inline), then only Jinja per recipient.
Baseline, same run: Jinja + MJML + css-inline for every recipient (Jinja templates cached too),
which is what a renderer without the two-stage split has to do.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import BenchResult
from campaigns.draft import Draft, DraftStep
from campaigns.render import EmailContent, Recipient, Renderer, content_from_draft
from drip.config import Clinic

SEED = Path(__file__).resolve().parents[1].parent / "shared" / "seeds" / "acupuncture-pain-relief.txt"

_NAMES = ["Maria Lopez", "José Álvarez", "Dr. Aiko Tanaka", "", "Chris O'Neil", "Priya Raman", "Li Wei",
          "Anna-Lena Müller", "Sam <Sammy> Reed", "Noor Haddad", "Tomás Ó Briain", "Grace Kim"]


def _builtin_draft() -> Draft:
    """A short article of the seed's shape, used when the seed (or the splitter) is not available."""
    body = ("- {0} can ease pain by calming the nervous system and relaxing tight muscles. Many patients "
            "notice a difference after a few sessions.\n\nTalk with your practitioner about what to expect.")
    items = ["Release of Endorphins", "Improved Blood Circulation", "Nervous System Regulation",
             "Reduction of Inflammation", "Muscle Relaxation", "Chronic Pain", "Acute Pain", "Muscle Spasms"]
    steps = [DraftStep("intro", "", "Acupuncture for Pain Relief", "Welcome: acupuncture for pain relief",
                       "Pain and muscle spasms can limit daily life. Acupuncture is a natural approach.")]
    steps += [DraftStep("item", "How Acupuncture Works", t, f"How acupuncture helps: {t.lower()}", body.format(t))
              for t in items]
    steps.append(DraftStep("outro", "", "Integrating Acupuncture", "Acupuncture alongside your care",
                           "Acupuncture can complement medication and physical therapy.\n\nPlease contact the office with any questions!"))
    return Draft("Acupuncture for Pain Relief and Muscle Spasm", steps)


def load_draft() -> tuple[Draft, str]:
    """The seed split by the project's splitter, else the built-in sample (and which one it was)."""
    if SEED.exists():
        try:
            from campaigns.split import split_file
        except ImportError:
            return _builtin_draft(), "built-in sample (splitter not available)"
        return split_file(SEED), f"seed {SEED.name}"
    return _builtin_draft(), "built-in sample (seed not found)"


def recipients(n: int) -> list[Recipient]:
    base = "https://riverside-clinic.example"
    return [
        Recipient(
            name=_NAMES[i % len(_NAMES)],
            email=f"patient{i}@example.com",
            unsubscribe_url=f"{base}/u/tok{i:06d}.sig?c=1&d={i}",
            preferences_url=f"{base}/preferences/tok{i:06d}.sig",
        )
        for i in range(n)
    ]


def _fast(contents: list[EmailContent], people: list[Recipient], rounds: int) -> tuple[float, float, float]:
    """Best-of-`rounds` emails/s including compiling every step once (wall clock, and by CPU time
    because the machine is shared), plus the compile time."""
    best, best_cpu, compile_s = 0.0, 0.0, 0.0
    for _ in range(rounds):
        renderer = Renderer(Clinic())
        cpu = time.process_time()
        start = time.perf_counter()
        compiled = [renderer.compile(c) for c in contents]
        compiled_at = time.perf_counter()
        for r in people:
            for ce in compiled:
                ce.render(r)
        elapsed = time.perf_counter() - start
        n = len(people) * len(contents)
        best_cpu = max(best_cpu, n / max(time.process_time() - cpu, 1e-9))
        if n / elapsed > best:
            best, compile_s = n / elapsed, compiled_at - start
    return best, best_cpu, compile_s


def _slow(renderer: Renderer, contents: list[EmailContent], people: list[Recipient], rounds: int) -> tuple[float, float]:
    best, best_cpu = 0.0, 0.0
    for _ in range(rounds):
        cpu = time.process_time()
        start = time.perf_counter()
        for r in people:
            for c in contents:
                renderer.render_direct(c, r)
        n = len(people) * len(contents)
        best = max(best, n / (time.perf_counter() - start))
        best_cpu = max(best_cpu, n / max(time.process_time() - cpu, 1e-9))
    return best, best_cpu


def run(quick: bool = False) -> BenchResult:
    draft, source = load_draft()
    contents = [content_from_draft(draft, i) for i in range(len(draft.steps))]
    fast_people = recipients(200 if quick else 3000)
    slow_people = recipients(3 if quick else 20)
    rounds = 2 if quick else 3

    # Warm-up: imports, Jinja template loading, first MJML call, CPU caches.
    warm = Renderer(Clinic())
    for c in contents:
        warm.compile(c).render(fast_people[0])
        warm.render_direct(c, slow_people[0])

    rate, rate_cpu, compile_s = _fast(contents, fast_people, rounds)
    baseline, baseline_cpu = _slow(warm, contents, slow_people, rounds)
    sizes = [len(warm.compile(c).render(fast_people[0]).html.encode()) for c in contents]
    return BenchResult(
        bench="render",
        unit="emails/s",
        rate=rate,
        baseline=baseline,
        label="compile once + Jinja per recipient",
        baseline_label="MJML + css-inline per recipient",
        details={
            "source": source,
            "steps": len(contents),
            "emails_timed": len(fast_people) * len(contents),
            "baseline_emails_timed": len(slow_people) * len(contents),
            "us_per_email": round(1e6 / rate, 2),
            "baseline_us_per_email": round(1e6 / baseline, 1),
            "rate_by_cpu_time": round(rate_cpu, 1),
            "baseline_by_cpu_time": round(baseline_cpu, 1),
            "ratio_by_cpu_time": round(rate_cpu / baseline_cpu, 1),
            "compile_ms_per_step": round(1000 * compile_s / len(contents), 2),
            "max_html_kb": round(max(sizes) / 1024, 1),
            "targets": "rate >= 30000 emails/s on one core, ratio >= 10x",
        },
    )
