"""Real documents made on the spot, for the tests and the benchmarks: PDFs with a text layer,
headings (bookmarks) and tables, a scanned page (an image only), DOCX, PPTX, XLSX and text
images; and hostile ones (encrypted, corrupt, truncated, a zip bomb, thousands of pages, one
slow to read). Each writer is a well-kept library (fpdf2, python-docx, python-pptx, openpyxl,
Pillow), so the files are what those tools write in the wild."""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


@dataclass
class Page:
    """One page of a made PDF: headings (level, title) in order, then paragraphs, then rows
    of a table; ``scanned`` renders the paragraphs into an image with no text layer;
    ``noise`` adds an image of random pixels, so many a side, below the text (it does not
    compress: a large file with a text layer)."""

    paragraphs: Sequence[str] = ()
    headings: Sequence[tuple[int, str]] = ()
    table: Sequence[Sequence[str]] = ()
    scanned: bool = False
    noise: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def text_image(lines: Sequence[str], fmt: str = "PNG", width: int = 1700, size: int = 40) -> bytes:
    """``lines`` rendered black on white as a scan would be (about 200 dpi on A4's width)."""
    font = ImageFont.load_default(size=size)
    height = max(400, 120 + len(lines) * int(size * 1.6))
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((80, 80 + i * int(size * 1.6)), line, font=font, fill=0)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def pdf(pages: Sequence[Page], title: str = "", password: str | None = None) -> bytes:
    """A PDF of ``pages`` (fpdf2): headings are bookmarks and bold lines, tables are cells."""
    from fpdf import FPDF

    doc = FPDF(format="A4")
    doc.set_auto_page_break(False)
    if title:
        doc.set_title(title)
    if password is not None:
        doc.set_encryption(owner_password=password + "-owner", user_password=password)
    for page in pages:
        doc.add_page()
        if page.scanned:
            doc.image(io.BytesIO(text_image(list(page.paragraphs))), x=0, y=0, w=210)
            continue
        doc.set_xy(15, 15)
        for level, heading in page.headings:
            doc.start_section(heading, level=level - 1)
            doc.set_font("Helvetica", "B", 20 - 2 * level)
            doc.multi_cell(180, 9, heading, new_x="LMARGIN", new_y="NEXT")
        doc.set_font("Helvetica", "", 11)
        for para in page.paragraphs:
            doc.multi_cell(180, 6, para, new_x="LMARGIN", new_y="NEXT")
            doc.ln(3)
        for row in page.table:
            for cell in row:
                doc.cell(180 / len(row), 7, cell, border=1)
            doc.ln(7)
        if page.noise:
            pixels = random.Random(page.noise).randbytes(page.noise * page.noise)
            img = Image.frombytes("L", (page.noise, page.noise), pixels)
            doc.image(img, x=15, y=150, w=60)
    return bytes(doc.output())


def blank_pdf(pages: int) -> bytes:
    """A PDF of ``pages`` empty pages (a page-limit test)."""
    from fpdf import FPDF

    doc = FPDF(format=(100, 100))
    for _ in range(pages):
        doc.add_page()
    return bytes(doc.output())


def slow_image(side: int = 4000) -> bytes:
    """A PNG of ``side`` x ``side`` pixels tiled with small words: a few hundred KB on disk,
    minutes of OCR (the converter's time limit is for files like this)."""
    font = ImageFont.load_default(size=22)
    tile = Image.new("L", (120, 40), 255)
    ImageDraw.Draw(tile).text((2, 5), "slow ab", font=font, fill=0)
    img = Image.new("L", (side, side), 255)
    for x in range(0, side, 120):
        for y in range(0, side, 40):
            img.paste(tile, (x, y))
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def docx(blocks: Sequence[tuple[str, object]], title: str = "") -> bytes:
    """A DOCX of ``blocks``: ("h1".."h3", text), ("p", text) or ("table", rows)."""
    import docx as python_docx

    doc = python_docx.Document()
    if title:
        doc.core_properties.title = title
    for kind, value in blocks:
        if kind.startswith("h"):
            doc.add_heading(str(value), level=int(kind[1:]))
        elif kind == "p":
            doc.add_paragraph(str(value))
        else:
            rows = list(value)  # type: ignore[call-overload]
            table = doc.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def pptx(slides: Sequence[tuple[str, Sequence[str]]], notes: Sequence[str] = ()) -> bytes:
    """A PPTX of (title, bullet lines) slides; ``notes[i]`` are slide i's speaker notes."""
    from pptx import Presentation

    deck = Presentation()
    for i, (title, bullets) in enumerate(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0] if bullets else ""
        for line in bullets[1:]:
            body.add_paragraph().text = line
        if i < len(notes):
            slide.notes_slide.notes_text_frame.text = notes[i]
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx(sheets: dict[str, Sequence[Sequence[object]]]) -> bytes:
    """An XLSX with one sheet per entry, its rows as given (the first is the header)."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def zip_bomb_docx(unpacked_bytes: int = 1024**3) -> bytes:
    """A DOCX whose document part inflates to ``unpacked_bytes`` (a few MB on disk)."""
    good = docx([("p", "bomb")])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            if item.filename != "word/document.xml":
                dst.writestr(item, src.read(item))
        part = zipfile.ZipInfo("word/document.xml")
        part.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(part, "w", force_zip64=True) as f:  # streamed: never held in memory
            chunk = b" " * (1024 * 1024)
            for _ in range(unpacked_bytes // len(chunk)):
                f.write(chunk)
    return out.getvalue()


def encrypted_office() -> bytes:
    """What Office writes for a password-protected DOCX: an OLE container (not a zip) with an
    EncryptionInfo stream. Only the signature and stream name matter to a reader."""
    header = bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00" * 504
    return header + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 4096


def samples(folder: Path) -> list[Path]:
    """The sample documents `make run` indexes beside the Markdown (``docs/samples``): a
    handbook PDF whose second page is a scan, an onboarding DOCX with a table, a roadmap
    deck. ``python -m tests.documents docs/samples`` writes them again."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "travel-handbook.pdf": pdf(
            [
                Page(
                    headings=[(1, "Travel handbook"), (2, "Booking")],
                    paragraphs=[
                        "Book trains and flights through the travel desk at least two weeks "
                        "before the trip. Economy class is the default for trips under six "
                        "hours.",
                        "Hotels are booked by the travel desk too; keep the confirmation "
                        "e-mail for the expense report.",
                    ],
                ),
                Page(
                    scanned=True,
                    paragraphs=[
                        "Meals and allowances",
                        "The daily meal allowance on business trips",
                        "is 40 euros per day. Receipts are not",
                        "needed for meals within the allowance.",
                    ],
                ),
                Page(
                    headings=[(2, "Expenses")],
                    paragraphs=[
                        "Submit the expense report within thirty days of your return, with a "
                        "receipt for every cost above ten euros."
                    ],
                    table=[["Cost", "Limit"], ["Taxi", "60 euros"], ["Hotel night", "150 euros"]],
                ),
            ],
            title="Travel handbook",
        ),
        "onboarding.docx": docx(
            [
                ("h1", "Onboarding"),
                ("p", "Every new engineer gets a laptop and a buddy on the first day."),
                ("h2", "Accounts"),
                (
                    "table",
                    [["System", "Who sets it up"], ["E-mail", "IT desk"], ["VPN", "IT desk"]],
                ),
                ("h2", "First week"),
                ("p", "In the first week a new engineer ships one small change to production."),
            ],
            title="Onboarding guide",
        ),
        "roadmap.pptx": pptx(
            [
                ("Platform roadmap", ["Documents as they are: PDF, Office and scans."]),
                ("Next quarter", ["A Helm chart for Kubernetes.", "OpenTelemetry traces."]),
            ],
            notes=["The roadmap is reviewed every quarter."],
        ),
    }
    written = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        written.append(folder / name)
    return written


if __name__ == "__main__":
    import sys

    for p in samples(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/samples")):
        print(p, p.stat().st_size, "bytes")
