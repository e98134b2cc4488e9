"""A reportlab canvas that writes each page out as soon as it is finished, so a long printout
costs no more memory than a short one.

reportlab's own document keeps every finished page (its uncompressed content stream) until
`save()` and then formats the whole file in memory: 0.4 KiB per record of a child's printout
(bench/export_pdf.md). StreamedDocument formats a page and its compressed content stream when
the canvas finishes it, hands the bytes to a sink and forgets them, keeping the page's object
number and each object's file offset (8 bytes each); at `save()` it writes what the pages
share (the embedded font subsets, which are only known when every glyph has been drawn, the
page tree, the catalog, the info), then the cross-reference table and the trailer.

It relies on PDFDocument's bookkeeping (Reference, idToObject, numberToId,
idToObjectNumberAndVersion, Pages, delayedFonts), stable since reportlab 2; the printout's tests
read every file it writes back with pypdf in strict mode. Not supported (the portal uses
neither): encryption, and anything that refers to a page after it is written (outlines,
links to a page)."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from typing import Any

from reportlab.pdfbase import pdfdoc
from reportlab.pdfgen.canvas import Canvas

Sink = Callable[[bytes], object]
XREF_BATCH = 512  # cross-reference lines formatted per write


class StreamedDocument(pdfdoc.PDFDocument):
    """A PDFDocument whose pages go to `sink` as they are added (see the module's docstring)."""

    def __init__(self, sink: Sink, **options: Any) -> None:
        super().__init__(**options)
        self._sink = sink
        self._size = 0  # bytes handed to the sink so far: the next object's offset
        self._offsets = array("q")  # object number -> offset, -1 while unwritten
        self._kids = array("q")  # the pages' object numbers, in order
        self.Pages = self.Catalog.Pages = _PageTree(self._kids)

    # --- what the canvas calls ---------------------------------------------------------------

    def addPage(self, page: pdfdoc.PDFPage) -> None:
        """Register the page as reportlab does, then write it and its content stream at once
        and drop both from the document (the page tree keeps the page's number only)."""
        super().addPage(page)
        if not self._size:  # the header goes out with the first page
            self._emit(pdfdoc.PDFFile(self._pdfVersion).format(self))
        name = page.__InternalName__
        self._kids.append(self._number(name))
        self._write(name, forget=True)  # formatting the page registers its content stream...
        self._write(page.Contents.__InternalName__, forget=True)  # ...written right after it

    def SaveToFile(self, filename: object, canvas: Canvas) -> None:
        """Write what the pages share, the cross-reference table and the trailer to the sink
        (the canvas's file name is not used: the sink is the output)."""
        self.GetPDFData(canvas)

    def format(self) -> bytes:
        """What GetPDFData calls last: write the objects not yet written, in number order
        (formatting one may register more, such as a font subset's descriptor), then the
        cross-reference table and the trailer. Returns nothing: the bytes went to the sink."""
        if not isinstance(self.encrypt, pdfdoc.NoEncryption):
            raise NotImplementedError("a streamed document cannot be encrypted")
        if not self._size:
            self._emit(pdfdoc.PDFFile(self._pdfVersion).format(self))
        catalog, info = self.Reference(self.Catalog), self.Reference(self.info)
        number = 1
        while number <= self.objectcounter:
            name = self.numberToId.get(number)
            if name is not None:
                self._write(name)
            number += 1
        xref = self._size
        self._emit(b"xref\n0 %d\n0000000000 65535 f \n" % (self.objectcounter + 1))
        offsets = self._offsets
        if len(offsets) != self.objectcounter + 1 or -1 in offsets[1:]:
            raise ValueError("an object was registered but never written")
        for start in range(1, len(offsets), XREF_BATCH):
            batch = offsets[start : start + XREF_BATCH]
            self._emit(b"".join(b"%010d 00000 n \n" % at for at in batch))
        trailer = pdfdoc.PDFTrailer(
            startxref=xref, Size=self.objectcounter + 1, Root=catalog, Info=info, ID=self.ID()
        )
        self._emit(trailer.format(self))
        return b""

    # --- writing -----------------------------------------------------------------------------

    def _emit(self, data: bytes) -> int:
        at = self._size
        self._sink(data)
        self._size += len(data)
        return at

    def _number(self, name: str) -> int:
        number: int = self.idToObjectNumberAndVersion[name][0]
        return number

    def _write(self, name: str, forget: bool = False) -> None:
        """Format the object registered as `name`, hand it to the sink and remember its
        offset; a page's objects are forgotten (no later object refers to them)."""
        number = self._number(name)
        data = pdfdoc.PDFIndirectObject(name, self.idToObject[name]).format(self)
        if len(self._offsets) <= self.objectcounter:
            self._offsets.extend([-1] * (self.objectcounter + 1 - len(self._offsets)))
        self._offsets[number] = self._emit(data)
        del self.numberToId[number]  # written: the final loop skips it
        if forget:
            del self.idToObject[name], self.idToObjectNumberAndVersion[name]


class _PageTree(pdfdoc.PDFPages):
    """The page tree, holding the pages' object numbers rather than the pages."""

    def __init__(self, numbers: array[int]) -> None:
        super().__init__()
        self.numbers = numbers

    def addPage(self, page: pdfdoc.PDFPage) -> None:
        """Nothing to keep: StreamedDocument notes the page's number when it writes it."""

    def check_format(self, document: pdfdoc.PDFDocument) -> None:
        self.Kids = _Kids(self.numbers)
        self.Count = len(self.numbers)


class _Kids(pdfdoc.PDFObject):
    """The page tree's /Kids array, formatted from the pages' object numbers."""

    def __init__(self, numbers: array[int]) -> None:
        self.numbers = numbers

    def format(self, document: object) -> bytes:
        return b"[ " + b" ".join(b"%d 0 R" % n for n in self.numbers) + b" ]"


class StreamedCanvas(Canvas):
    """A reportlab Canvas drawing into a StreamedDocument: each finished page goes to `sink`
    at `showPage()`, the rest at `save()`."""

    def __init__(self, sink: Sink, lang: str | None = None, **options: Any) -> None:
        if options.get("encrypt"):
            raise NotImplementedError("a streamed document cannot be encrypted")
        super().__init__(None, lang=lang, **options)
        self._doc = StreamedDocument(
            sink,
            compression=options.get("pageCompression", 0),
            invariant=options.get("invariant"),
            pdfVersion=options.get("pdfVersion") or pdfdoc.PDF_VERSION_DEFAULT,
            lang=lang,
        )
        self._make_preamble()  # as Canvas made it, against this document


def pages(draw: Callable[[Sink], Iterator[None]]) -> Iterator[bytes]:
    """The bytes `draw` hands its sink, given out whenever it pauses (yields) with some
    waiting: a generator that draws a document lazily, as a response body pulls it."""
    waiting: list[bytes] = []
    for _ in draw(waiting.append):
        if waiting:
            yield b"".join(waiting)
            waiting.clear()
    if waiting:
        yield b"".join(waiting)
