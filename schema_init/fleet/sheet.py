"""A device list as spreadsheets save it: the bytes of a CSV file -> rows of cells, each
cell knowing its line, its column and whether it was quoted.

What real spreadsheets write, and what is done with it:

* the encoding: UTF-8 with or without a BOM (Excel's "CSV UTF-8", LibreOffice), UTF-16
  with its BOM (Excel's "Unicode Text"), else Windows-1252 (Excel's plain "CSV" on a
  Western Windows; Latin-1 for the five bytes cp1252 leaves undefined): ``decode`` says
  which it took;
* the delimiter: ``,``; ``;`` (Excel where the decimal mark is a comma: German, French);
  a tab.  ``sniff`` takes the one that splits the header line into the most known
  column names, so a ``;`` file is never read as one column;
* quoting as RFC 4180 (``"a, b"``, ``""`` for a quote, line breaks inside quotes); a
  cell's ``quoted`` flag lets the caller keep spaces the writer meant;
* rows with nothing in them (Excel's trailing ``;;;;`` rows) are dropped; every other
  row must have as many cells as the header: a missing middle value would otherwise
  shift every later value into the wrong column.

Nothing here raises on any input but ``SheetError``, whose text names the file, the line
and the column.
"""

import codecs


class SheetError(ValueError):
    pass


class Cell:
    __slots__ = ("text", "line", "column", "quoted")

    def __init__(self, text, line, column, quoted):
        self.text, self.line, self.column, self.quoted = text, line, column, quoted

    def __repr__(self):
        return "Cell(%r, line=%d, column=%d%s)" % (self.text, self.line, self.column,
                                                    ", quoted" if self.quoted else "")


def decode(data):
    """(text, encoding name) of a spreadsheet's bytes."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace"), "UTF-8 (with BOM)"
    for bom, name in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[2:].decode(name), "UTF-16"
            except UnicodeDecodeError:
                break
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    # Windows-1252, with cp1252's five undefined bytes taken as Latin-1
    text = "".join(chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else
                   bytes((b,)).decode("cp1252") for b in data)
    return text, "Windows-1252"


DELIMITERS = (",", ";", "\t")


def sniff(text, known):
    """The delimiter that splits the first line into the most names of KNOWN."""
    first = text.split("\n", 1)[0]
    best, score = ",", -1
    for delimiter in DELIMITERS:
        names = [n.strip().strip('"').strip().lower() for n in first.split(delimiter)]
        hits = sum(1 for n in names if n in known)
        if hits > score:
            best, score = delimiter, hits
    return best


def tokenize(text, delimiter, name):
    """[[Cell]] of every physical record; a line break inside quotes stays in the cell."""
    rows, row = [], []
    cell, quoted, in_quotes, after_quote = [], False, False, False
    line, start_line, column = 1, 1, 1
    pos, length = 0, len(text)
    while pos <= length:
        char = text[pos] if pos < length else None
        if in_quotes:
            if char is None:
                raise SheetError("%s:%d: column %d: a quote opened here is never closed"
                                 % (name, start_line, column))
            if char == '"':
                if text[pos + 1:pos + 2] == '"':
                    cell.append('"')
                    pos += 2
                    continue
                in_quotes, after_quote = False, True
            else:
                if char == "\n":
                    line += 1
                cell.append(char)
            pos += 1
            continue
        if char is None or char == "\n" or char == delimiter:
            row.append(Cell("".join(cell), start_line, column, quoted))
            cell, quoted, after_quote = [], False, False
            column += 1
            if char != delimiter:
                rows.append(row)
                row, column = [], 1
                line += 1
                start_line = line
            pos += 1
            continue
        if char == '"' and not quoted and not "".join(cell).strip():
            cell, quoted, in_quotes = [], True, True
            pos += 1
            continue
        if after_quote:
            if char in " \t":
                pos += 1
                continue
            raise SheetError("%s:%d: column %d: text after a closing quote (a quote inside "
                             "a quoted cell is written twice: \"\")" % (name, line, column))
        if char == '"':
            raise SheetError("%s:%d: column %d: a quote inside a cell that does not start "
                             "with one (quote the whole cell and write the quote twice)"
                             % (name, line, column))
        cell.append(char)
        pos += 1
    return rows


def read(data, name, known):
    """(header [str], rows [(line, [Cell])], notes [str]) of a CSV file's bytes; KNOWN
    is the set of column names the delimiter is sniffed with."""
    text, encoding = decode(data)
    notes = []
    if encoding not in ("UTF-8", "UTF-8 (with BOM)"):
        notes.append("%s: read as %s" % (name, encoding))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\0" in text:
        raise SheetError("%s: a NUL byte: this is not a CSV text file" % name)
    delimiter = sniff(text, known)
    records = tokenize(text, delimiter, name)
    records = [r for r in records if any(c.text.strip() for c in r)]
    if not records:
        raise SheetError("%s:1: empty: a header line naming the columns is expected" % name)
    header = [c.text.strip().lower().replace(" ", "_") for c in records[0]]
    while header and not header[-1]:
        header.pop()                       # Excel's empty columns at the right
    rows = []
    for record in records[1:]:
        cells = record
        while len(cells) > len(header) and not cells[-1].text.strip():
            cells = cells[:-1]
        line = cells[0].line
        if len(cells) != len(header):
            shown = ", ".join("%s=%r" % (h, c.text) for h, c in zip(header, cells))
            raise SheetError(
                "%s:%d: %d values for %d columns (%s): %s; every row has one value a column, "
                "an empty one written as nothing between two '%s'"
                % (name, line, len(cells), len(header), ", ".join(header),
                   "a value is missing" if len(cells) < len(header) else "a value too many",
                   delimiter if delimiter != "\t" else "tab") + "; this row reads " + shown)
        rows.append((line, cells))
    return header, rows, notes
