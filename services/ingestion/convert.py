"""Documents as they are, to Markdown-like text by page: PDF (pypdfium2, pages without a text
layer OCRed), DOCX (python-docx), PPTX (python-pptx), XLSX (openpyxl) and images (Pillow and
Tesseract through pytesseract). README's "Documents" says how they were chosen.

The output keeps what the pipeline uses: headings as ``#`` lines (the heading path), tables
as one row per line, and the page (PDF page, slide, sheet, image frame) of every section.
This code reads hostile bytes: it runs in the converter process (``converter.py``), which
holds the time and memory limits; the limits checked here (pages, unpacked size) are the
ones that can be checked before anything is read.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from services.ingestion.validate import IngestError
from shared.contracts.events import TEXT_TYPES, ContentType

# A page with fewer characters than this in its text layer is taken for a scan.
MIN_TEXT_LAYER_CHARS = 16
# Most pixels an image may decode to (a 600 dpi A3 scan is 70 Mpx); more is a pixel bomb.
MAX_IMAGE_PIXELS = 120_000_000
_OLE = bytes.fromhex("d0cf11e0a1b11ae1")
_BLANKS = re.compile(r"\n{3,}")
CONVERTED = frozenset(ContentType) - TEXT_TYPES


@dataclass(frozen=True)
class Limits:
    """What a conversion may do (from the ingestion settings)."""

    max_pages: int = 2000
    max_unpacked_bytes: int = 512 * 1024 * 1024
    ocr: bool = True
    ocr_languages: str = "eng"
    ocr_dpi: int = 200


@dataclass
class Section:
    """The text of one page (or slide, sheet, frame); ``page`` is None without pages."""

    page: int | str | None
    text: str


@dataclass
class Converted:
    """A converted document: its sections in order, its own title if it has one, and how
    many pages were read by OCR."""

    sections: list[Section] = field(default_factory=list)
    title: str = ""
    ocr_pages: int = 0

    def to_json(self) -> dict[str, Any]:
        """The form the converter process sends back (JSON, never pickle: the process reads
        hostile files, and its answer must not be able to run code here)."""
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Converted:
        """Read what ``to_json`` wrote."""
        sections = [Section(s["page"], str(s["text"])) for s in obj.get("sections", [])]
        return cls(sections, str(obj.get("title", "")), int(obj.get("ocr_pages", 0)))


def supported() -> str:
    """The content types ingestion reads, for error messages."""
    return ", ".join(t.value for t in ContentType)


def convert(data: bytes, ctype: ContentType, limits: Limits) -> Converted:
    """``data`` of type ``ctype`` as sections of text (raises IngestError: Unreadable,
    Encrypted, TooManyPages, TooLarge, UnsupportedContentType)."""
    readers: dict[ContentType, Callable[[bytes, Limits], Converted]] = {
        ContentType.PDF: _pdf,
        ContentType.DOCX: _docx,
        ContentType.PPTX: _pptx,
        ContentType.XLSX: _xlsx,
        ContentType.PNG: _image,
        ContentType.JPEG: _image,
        ContentType.TIFF: _image,
    }
    reader = readers.get(ctype)
    if reader is None:
        raise IngestError(
            "UnsupportedContentType", f"{ctype} is not converted; supported: {supported()}"
        )
    out = reader(data, limits)
    for s in out.sections:
        s.text = _BLANKS.sub("\n\n", s.text.replace("\r\n", "\n").replace("\x00", "")).strip()
    out.sections = [s for s in out.sections if s.text]
    return out


def _too_many(n: int, what: str, limits: Limits) -> None:
    if n > limits.max_pages:
        raise IngestError(
            "TooManyPages",
            f"the document has {n} {what}; the limit is {limits.max_pages} (INGESTION_MAX_PAGES)",
        )


# ---- PDF ---------------------------------------------------------------------------------


def _pdf(data: bytes, limits: Limits) -> Converted:
    import pypdfium2 as pdfium

    if b"%%EOF" not in data[-2048:]:
        raise IngestError("Unreadable", "not a whole PDF: no %%EOF marker at its end (truncated?)")
    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium.raw.FPDF_ERR_PASSWORD:
            raise IngestError("Encrypted", "the PDF needs a password to open") from None
        raise IngestError("Unreadable", f"not a readable PDF: {exc}") from None
    try:
        n = len(doc)
        _too_many(n, "pages", limits)
        outline = _outline(doc)
        out = Converted(title=(doc.get_metadata_dict().get("Title") or "").strip())
        for i in range(n):
            page = doc[i]
            text = page.get_textpage().get_text_bounded()
            if len(text.strip()) < MIN_TEXT_LAYER_CHARS and limits.ocr:
                image = page.render(scale=limits.ocr_dpi / 72, grayscale=True).to_pil()
                text = _ocr(image, limits) or text
                out.ocr_pages += 1
            out.sections.append(Section(i + 1, _place_headings(text, outline.get(i, []))))
        return out
    finally:
        doc.close()


def _outline(doc: Any) -> dict[int, list[tuple[int, str]]]:
    """The bookmarks (the PDF's own table of contents) by page index: (level, title)."""
    import pypdfium2 as pdfium

    by_page: dict[int, list[tuple[int, str]]] = {}
    try:
        for item in doc.get_toc(max_depth=6):
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            title = " ".join((item.get_title() or "").split())
            if index is not None and title:
                by_page.setdefault(index, []).append((item.level + 1, title))
    except pdfium.PdfiumError:
        return {}  # a broken outline costs the headings, not the text
    return by_page


def _place_headings(text: str, marks: list[tuple[int, str]]) -> str:
    """The page's text with each bookmark's line made a ``#`` heading; a bookmark whose
    title is not a line of the page goes on top."""
    lines = text.replace("\r\n", "\n").split("\n")
    top: list[str] = []
    for level, title in marks:
        heading = f"{'#' * level} {title}"
        for j, line in enumerate(lines):
            if " ".join(line.split()) == title:
                lines[j] = heading
                break
        else:
            top.append(heading)
    return "\n".join(top + lines)


# ---- Office (zip) files --------------------------------------------------------------------


def _open_zip(data: bytes, limits: Limits, kind: str) -> None:
    """Refuse what is not a sound Office file before a library opens it: an encrypted one
    (an OLE container), a broken zip, or one that unpacks past the limit (a zip bomb)."""
    if data.startswith(_OLE):
        if "EncryptionInfo".encode("utf-16-le") in data or b"EncryptedPackage" in data:
            raise IngestError("Encrypted", f"the {kind} file is password-protected")
        raise IngestError("Unreadable", f"an OLE file (a legacy Office format), not {kind}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            items = z.infolist()
            unpacked = sum(i.file_size for i in items)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise IngestError("Unreadable", f"not a readable {kind} file: {exc}") from None
    if unpacked > limits.max_unpacked_bytes or len(items) > 100_000:
        raise IngestError(
            "TooLarge",
            f"the {kind} file unpacks to {unpacked} bytes in {len(items)} parts; the limit is "
            f"{limits.max_unpacked_bytes} (INGESTION_MAX_UNPACKED_BYTES): a zip bomb?",
        )


def _office_error(kind: str, exc: Exception) -> IngestError:
    return IngestError("Unreadable", f"not a readable {kind} file: {type(exc).__name__}: {exc}")


def _row(cells: list[str]) -> str:
    """A table row as one line, its cells kept apart (a Markdown table row)."""
    return "| " + " | ".join(" ".join(c.split()) for c in cells) + " |"


def _docx(data: bytes, limits: Limits) -> Converted:
    _open_zip(data, limits, "DOCX")
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        doc = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for el in doc.element.body.iterchildren():
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "p":
                lines.append(_docx_paragraph(Paragraph(el, doc)))
            elif tag == "tbl":
                lines.append("")
                lines += [_row([c.text for c in row.cells]) for row in Table(el, doc).rows]
                lines.append("")
        title = (doc.core_properties.title or "").strip()
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the library on these bytes
        raise _office_error("DOCX", exc) from None
    return Converted([Section(None, "\n".join(lines))], title)


def _docx_paragraph(p: Any) -> str:
    style = (p.style.name if p.style is not None else "") or ""
    text = p.text.strip()
    m = re.match(r"Heading (\d)", style)
    if m and text:
        return f"\n{'#' * min(6, int(m.group(1)))} {text}\n"
    if style == "Title" and text:
        return f"\n# {text}\n"
    if style.startswith("List") and text:
        return f"- {text}"
    return f"{text}\n" if text else ""


def _pptx(data: bytes, limits: Limits) -> Converted:
    _open_zip(data, limits, "PPTX")
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
        slides = list(deck.slides)
        _too_many(len(slides), "slides", limits)
        out = Converted(title=(deck.core_properties.title or "").strip())
        for n, slide in enumerate(slides, 1):
            title_shape = slide.shapes.title
            title = " ".join(title_shape.text.split()) if title_shape is not None else ""
            lines = [f"# {title}"] if title else []
            for shape in slide.shapes:
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                lines += _pptx_shape(shape)
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame.text.strip()
                if notes:
                    lines += ["", f"Notes: {notes}"]
            out.sections.append(Section(n, "\n".join(lines)))
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the library on these bytes
        raise _office_error("PPTX", exc) from None
    return out


def _pptx_shape(shape: Any) -> Iterator[str]:
    if getattr(shape, "shapes", None) is not None:  # a group
        for inner in shape.shapes:
            yield from _pptx_shape(inner)
    if getattr(shape, "has_table", False) and shape.has_table:
        yield ""
        for row in shape.table.rows:
            yield _row([c.text for c in row.cells])
        yield ""
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        for para in shape.text_frame.paragraphs:
            text = " ".join("".join(r.text for r in para.runs).split())
            if text:
                yield text


def _xlsx(data: bytes, limits: Limits) -> Converted:
    _open_zip(data, limits, "XLSX")
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the library on these bytes
        raise _office_error("XLSX", exc) from None
    try:
        _too_many(len(book.worksheets), "sheets", limits)
        out = Converted(title=(book.properties.title or "").strip())
        for sheet in book.worksheets:
            lines = [f"# {sheet.title}", ""]
            for row in sheet.iter_rows(values_only=True):
                cells = ["" if v is None else str(v) for v in row]
                if any(cells):
                    lines.append(_row(cells))
            out.sections.append(Section(sheet.title, "\n".join(lines)))
        return out
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the library on these bytes
        raise _office_error("XLSX", exc) from None
    finally:
        book.close()


# ---- images and OCR ------------------------------------------------------------------------


def _image(data: bytes, limits: Limits) -> Converted:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    if not limits.ocr:
        raise IngestError(
            "UnsupportedContentType", "images are read by OCR, and INGESTION_OCR is off"
        )
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            frames = getattr(img, "n_frames", 1)
            _too_many(frames, "frames", limits)
            out = Converted()
            for n, frame in enumerate(ImageSequence.Iterator(img), 1):
                text = _ocr(frame.convert("L"), limits)
                out.sections.append(Section(n if frames > 1 else None, text))
                out.ocr_pages += 1
            return out
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise IngestError("TooLarge", f"the image is too large to decode: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise IngestError("Unreadable", f"not a readable image: {exc}") from None


def _ocr(image: Any, limits: Limits) -> str:
    import pytesseract

    try:
        return str(pytesseract.image_to_string(image, lang=limits.ocr_languages))
    except pytesseract.TesseractNotFoundError:
        raise IngestError(
            "ConverterMissing",
            "OCR needs Tesseract: apt-get install tesseract-ocr tesseract-ocr-eng "
            "(or set INGESTION_OCR=false)",
        ) from None
    except pytesseract.TesseractError as exc:
        raise IngestError("Unreadable", f"Tesseract could not read the image: {exc}") from None
