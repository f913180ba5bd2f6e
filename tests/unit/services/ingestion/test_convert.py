"""Unit tests of ``services.ingestion.convert``: real files, made by the libraries that
write them in the wild (``tests/documents.py``), convert to their known sentences with
their headings, table rows and pages; hostile ones get their named reason."""

from __future__ import annotations

import pytest

from services.ingestion.convert import Limits, convert
from services.ingestion.validate import IngestError
from shared.contracts.events import ContentType
from tests import documents as make

L = Limits()


def test_a_pdf_keeps_its_pages_its_bookmarked_headings_and_its_table_rows() -> None:
    data = make.pdf(
        [
            make.Page(
                headings=[(1, "Refunds")],
                paragraphs=["The refund window is thirty days from delivery."],
                table=[["Plan", "Price"], ["Pro", "30"]],
            ),
            make.Page(headings=[(2, "Exceptions")], paragraphs=["Gift cards are never refunded."]),
        ],
        title="Customer handbook",
    )
    out = convert(data, ContentType.PDF, L)
    assert out.title == "Customer handbook" and out.ocr_pages == 0
    assert [s.page for s in out.sections] == [1, 2]
    first, second = (s.text for s in out.sections)
    assert first.startswith("# Refunds\n") and "thirty days from delivery" in first
    assert "Plan Price" in first.splitlines() and "Pro 30" in first.splitlines()
    assert second.startswith("## Exceptions\n") and "never refunded" in second


def test_a_scanned_pdf_page_is_read_by_ocr_and_the_others_are_not() -> None:
    data = make.pdf(
        [
            make.Page(paragraphs=["This page has a text layer about invoices."]),
            make.Page(scanned=True, paragraphs=["Parcels leave the warehouse on Tuesdays."]),
        ]
    )
    out = convert(data, ContentType.PDF, L)
    assert out.ocr_pages == 1
    assert "Parcels leave the warehouse on Tuesdays." in out.sections[1].text
    assert out.sections[1].page == 2
    # without OCR the scanned page has no text, and is left out
    plain = convert(data, ContentType.PDF, Limits(ocr=False))
    assert [s.page for s in plain.sections] == [1]


def test_a_docx_keeps_heading_levels_paragraphs_and_table_rows_in_order() -> None:
    data = make.docx(
        [
            ("h1", "Onboarding"),
            ("p", "Every new hire gets a laptop on day one."),
            ("h2", "Accounts"),
            ("table", [["System", "Owner"], ["Email", "IT desk"]]),
            ("p", "Passwords rotate every ninety days."),
        ],
        title="Staff guide",
    )
    out = convert(data, ContentType.DOCX, L)
    (section,) = out.sections
    lines = [x for x in section.text.splitlines() if x]
    assert out.title == "Staff guide" and section.page is None
    assert lines == [
        "# Onboarding",
        "Every new hire gets a laptop on day one.",
        "## Accounts",
        "| System | Owner |",
        "| Email | IT desk |",
        "Passwords rotate every ninety days.",
    ]


def test_a_deck_is_one_section_per_slide_with_its_title_as_heading_and_its_notes() -> None:
    data = make.pptx(
        [("Quarterly results", ["Revenue grew nine percent.", "Churn fell."]), ("Next", ["Hire"])],
        notes=["Mention the Lisbon office."],
    )
    out = convert(data, ContentType.PPTX, L)
    assert [s.page for s in out.sections] == [1, 2]
    assert out.sections[0].text.splitlines()[:3] == [
        "# Quarterly results",
        "Revenue grew nine percent.",
        "Churn fell.",
    ]
    assert "Notes: Mention the Lisbon office." in out.sections[0].text


def test_a_workbook_is_one_section_per_sheet_named_by_it_with_a_line_per_row() -> None:
    data = make.xlsx({"Prices": [["Plan", "Price"], ["Pro", 30]], "Staff": [["Ann", "Ops"]]})
    out = convert(data, ContentType.XLSX, L)
    assert [s.page for s in out.sections] == ["Prices", "Staff"]
    assert out.sections[0].text.splitlines() == ["# Prices", "", "| Plan | Price |", "| Pro | 30 |"]


@pytest.mark.parametrize("fmt,ctype", [("PNG", ContentType.PNG), ("JPEG", ContentType.JPEG)])
def test_ocr_finds_a_known_sentence_in_a_rendered_image(fmt: str, ctype: ContentType) -> None:
    data = make.text_image(["The spare key is in the blue box."], fmt=fmt)
    out = convert(data, ctype, L)
    assert "The spare key is in the blue box." in out.sections[0].text and out.ocr_pages == 1


def test_a_multi_page_tiff_has_a_page_per_frame() -> None:
    import io

    from PIL import Image

    frames = [
        Image.open(io.BytesIO(make.text_image([f"Frame number {w} speaks."])))
        for w in ("one", "two")
    ]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    out = convert(buf.getvalue(), ContentType.TIFF, L)
    assert [s.page for s in out.sections] == [1, 2]
    assert "Frame number two speaks." in out.sections[1].text


def hostile() -> list[tuple[str, bytes, ContentType, str]]:
    good = make.pdf([make.Page(paragraphs=["whole"])] * 3)
    return [
        (
            "encrypted pdf",
            make.pdf([make.Page(paragraphs=["x"])], password="pw"),
            ContentType.PDF,
            "Encrypted",
        ),
        (
            "corrupt pdf",
            b"%PDF-1.7\n" + b"\x13\x37" * 500 + b"\n%%EOF\n",
            ContentType.PDF,
            "Unreadable",
        ),
        ("truncated pdf", good[: len(good) // 2], ContentType.PDF, "Unreadable"),
        ("5,000 pages", make.blank_pdf(5000), ContentType.PDF, "TooManyPages"),
        ("encrypted docx", make.encrypted_office(), ContentType.DOCX, "Encrypted"),
        ("zip bomb", make.zip_bomb_docx(600 * 1024 * 1024), ContentType.DOCX, "TooLarge"),
        ("not a zip", b"PK\x03\x04 broken", ContentType.XLSX, "Unreadable"),
        ("truncated pptx", make.pptx([("t", ["b"])])[:2000], ContentType.PPTX, "Unreadable"),
        ("not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, ContentType.PNG, "Unreadable"),
    ]


HOSTILE = hostile()


@pytest.mark.parametrize("name,data,ctype,code", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_files_get_their_reason(
    name: str, data: bytes, ctype: ContentType, code: str
) -> None:
    with pytest.raises(IngestError) as info:
        convert(data, ctype, L)
    assert info.value.code == code, str(info.value)


def test_a_text_type_is_not_converted_and_the_error_names_what_is() -> None:
    with pytest.raises(IngestError) as info:
        convert(b"hi", ContentType.TEXT, L)
    assert info.value.code == "UnsupportedContentType"
    assert "application/pdf" in str(info.value) and "image/tiff" in str(info.value)


def test_the_shipped_samples_convert_to_what_make_run_asks_about() -> None:
    from pathlib import Path

    from services.dev import PDF_EXAMPLE

    folder = Path(__file__).resolve().parents[4] / "docs" / "samples"
    pdf = convert((folder / "travel-handbook.pdf").read_bytes(), ContentType.PDF, L)
    page = next(s for s in pdf.sections if s.page == PDF_EXAMPLE.page)
    assert "40 euros per day" in page.text and pdf.ocr_pages == 1, "read by OCR"
    docx = convert((folder / "onboarding.docx").read_bytes(), ContentType.DOCX, L)
    assert "| VPN | IT desk |" in docx.sections[0].text
    deck = convert((folder / "roadmap.pptx").read_bytes(), ContentType.PPTX, L)
    assert deck.sections[1].text.startswith("# Next quarter")
    assert all(p.stat().st_size < 100_000 for p in folder.iterdir())
