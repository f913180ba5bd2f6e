"""How the document libraries were chosen: the candidates side by side on the same files.

PDF text by pypdfium2 (the platform's), pypdf, pdfminer.six, pdfplumber and markitdown, on one
PDF of ``--pages`` pages with a marker sentence per page; DOCX, PPTX and XLSX by the direct
libraries (the platform's) and by markitdown. Prints each one's time, its speed relative to
the platform's choice, and whether it found every marker. Candidates that are not installed
are skipped with a note: only the platform's choices are in requirements.lock, so install
the others in a scratch virtualenv to compare:

    pip install pypdf==7.1.0 pdfminer.six==20260107 pdfplumber==0.11.10 \
        'markitdown[pdf,docx,pptx,xlsx]==0.1.9'
    python bench/converters.py [--pages 30]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.ingestion.convert import Limits, convert  # noqa: E402
from shared.contracts.events import ContentType  # noqa: E402
from tests import documents as make  # noqa: E402

WORDS = [
    "data",
    "model",
    "stream",
    "broker",
    "index",
    "vector",
    "token",
    "policy",
    "refund",
    "invoice",
    "shipping",
]


def para(rnd: random.Random, n: int = 60) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(n)).capitalize() + "."


def best_of(f: Callable[[], str], reps: int = 3) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    return best, out


def compare(title: str, files: int, markers: list[str], runs: dict[str, Callable[[], str]]) -> None:
    print(f"\n{title}")
    base: float | None = None
    for name, f in runs.items():
        try:
            seconds, out = best_of(f)
        except ImportError as exc:
            print(f"  {name:<24} not installed ({exc.name})")
            continue
        except Exception as exc:  # noqa: BLE001 - a candidate failing is a result
            print(f"  {name:<24} FAILED: {type(exc).__name__}: {str(exc)[:90]}")
            continue
        base = base or seconds
        found = all(m in out for m in markers)
        print(
            f"  {name:<24} {1000 * seconds:8.1f} ms  {files / seconds:8.1f} /s  "
            f"{base / seconds:6.2f}x the platform's speed  markers {'all' if found else 'MISSING'}"
        )


def markitdown(data: bytes, ext: str) -> str:
    from markitdown import MarkItDown

    return str(MarkItDown().convert_stream(io.BytesIO(data), file_extension=ext).text_content)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=30)
    args = ap.parse_args()
    rnd = random.Random(1)
    markers = [f"marker{i}z" for i in range(args.pages)]
    pdf = make.pdf(
        [
            make.Page(headings=[(1, f"Chapter {i}")], paragraphs=[para(rnd) + f" {m}."] * 4)
            for i, m in enumerate(markers)
        ]
    )

    def pypdf_text() -> str:
        import pypdf

        return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)

    def pdfminer_text() -> str:
        from pdfminer.high_level import extract_text

        return str(extract_text(io.BytesIO(pdf)))

    def pdfplumber_text() -> str:
        import pdfplumber

        with pdfplumber.open(io.BytesIO(pdf)) as doc:
            return "\n".join(p.extract_text() or "" for p in doc.pages)

    def platform(data: bytes, ctype: ContentType) -> Callable[[], str]:
        return lambda: "\n".join(s.text for s in convert(data, ctype, Limits()).sections)

    compare(
        f"PDF, {args.pages} pages (pages/s)",
        args.pages,
        markers,
        {
            "pypdfium2 (platform)": platform(pdf, ContentType.PDF),
            "pypdf": pypdf_text,
            "pdfminer.six": pdfminer_text,
            "pdfplumber": pdfplumber_text,
            "markitdown": lambda: markitdown(pdf, ".pdf"),
        },
    )
    blocks: list[tuple[str, object]] = []
    for i, m in enumerate(markers):
        blocks += [("h2", f"Part {i}"), ("p", para(rnd) + f" {m}.")]
    docx = make.docx(blocks)
    deck = make.pptx([(f"Slide {i}", [para(rnd, 15) + f" {m}."]) for i, m in enumerate(markers)])
    rows = [["Plan", "Price"]] + [[f"row{i}", i] for i in range(2000)]
    sheet = make.xlsx({"Prices": rows})
    for title, data, ctype, ext, ms in (
        ("DOCX (documents/s)", docx, ContentType.DOCX, ".docx", markers),
        ("PPTX (decks/s)", deck, ContentType.PPTX, ".pptx", markers),
        ("XLSX, 2,000 rows (workbooks/s)", sheet, ContentType.XLSX, ".xlsx", ["row1999"]),
    ):
        direct = {ContentType.DOCX: "python-docx", ContentType.PPTX: "python-pptx"}
        compare(
            title,
            1,
            ms,
            {
                f"{direct.get(ctype, 'openpyxl')} (platform)": platform(data, ctype),
                "markitdown": lambda d=data, e=ext: markitdown(d, e),  # type: ignore[misc]
            },
        )


if __name__ == "__main__":
    main()
