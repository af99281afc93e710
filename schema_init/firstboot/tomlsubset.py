"""The TOML subset a first-boot file is read with (the static binary has no tomllib).

The file's rules: the input is anything a card's holder wrote, so parsing is strict and
bounded, and everything accepted is accepted by TOML 1.0 with the same meaning (a
file read here and by ``tomllib`` gives the same dicts: tests/test_firstboot.py checks
it on fuzzed files).  What is accepted:

* ``key = value`` with a bare key (letters, digits, ``_`` and ``-``);
* values: basic ``"..."`` and literal ``'...'`` strings on one line, decimal integers,
  ``true``/``false``, and arrays of those (across lines, with comments and a trailing
  comma; never nested);
* table headers ``[a]`` and ``[a.b]``, arrays of tables ``[[a]]`` and ``[[a.b]]`` (at
  most two names deep, at most ``MAX_TABLES`` entries an array);
* comments and blank lines; a UTF-8 BOM at the start; CRLF line ends.

Anything else (floats, dates, inline tables, dotted keys, multi-line strings) is an
error naming its line: ``TomlError.line``.  ``parse`` has no recursion and stops at
``MAX_BYTES`` or ``MAX_LINES``.
"""

MAX_BYTES = 65536
MAX_LINES = 2000
MAX_ARRAY = 64
MAX_KEY = 64
MAX_TABLES = 16


class TomlError(ValueError):
    def __init__(self, line, message):
        ValueError.__init__(self, "line %d: %s" % (line, message))
        self.line = line
        self.message = message


_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_HEX = frozenset("0123456789abcdefABCDEF")


def _is_control(char):
    return (ord(char) < 0x20 and char != "\t") or char == "\x7f"


def _skip_space(text, pos):
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _bare_key(text, pos, line):
    start = pos
    while pos < len(text) and text[pos] in _BARE:
        pos += 1
    if pos == start:
        if text[pos:pos + 1] in ('"', "'"):
            raise TomlError(line, "quoted keys are not accepted here")
        raise TomlError(line, "a key is expected (letters, digits, _ and -)")
    if pos - start > MAX_KEY:
        raise TomlError(line, "key longer than %d characters" % MAX_KEY)
    return text[start:pos], pos


def _basic_string(text, pos, line):
    """A "..." string from pos (just after the quote) to the closing quote."""
    out = []
    while True:
        if pos >= len(text):
            raise TomlError(line, "string not closed")
        char = text[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\":
            code = text[pos + 1:pos + 2]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                pos += 2
                continue
            if code in ("u", "U"):
                width = 4 if code == "u" else 8
                digits = text[pos + 2:pos + 2 + width]
                if len(digits) != width or any(c not in _HEX for c in digits):
                    raise TomlError(line, "bad \\%s escape" % code)
                value = int(digits, 16)
                if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                    raise TomlError(line, "escape \\%s%s is not a character" % (code, digits))
                out.append(chr(value))
                pos += 2 + width
                continue
            raise TomlError(line, "unknown escape \\%s" % code)
        if char == "\n":
            raise TomlError(line, "string not closed on its line")
        if _is_control(char):
            raise TomlError(line, "control character in a string")
        out.append(char)
        pos += 1


def _literal_string(text, pos, line):
    end = text.find("'", pos)
    newline = text.find("\n", pos)
    if end < 0 or (0 <= newline < end):
        raise TomlError(line, "string not closed on its line")
    value = text[pos:end]
    if any(_is_control(c) for c in value):
        raise TomlError(line, "control character in a string")
    return value, end + 1


def _scalar(text, pos, line):
    char = text[pos:pos + 1]
    if char == '"':
        if text.startswith('"""', pos):
            raise TomlError(line, "multi-line strings are not accepted here")
        return _basic_string(text, pos + 1, line)
    if char == "'":
        if text.startswith("'''", pos):
            raise TomlError(line, "multi-line strings are not accepted here")
        return _literal_string(text, pos + 1, line)
    if char == "{":
        raise TomlError(line, "inline tables are not accepted here")
    end = pos
    while end < len(text) and text[end] not in " \t\n,]#":
        end += 1
    word = text[pos:end]
    if word == "true":
        return True, end
    if word == "false":
        return False, end
    digits = word[1:] if word[:1] in "+-" else word
    if digits and len(digits) <= 18 and all(c in "0123456789" for c in digits) and \
            (digits == "0" or digits[0] != "0"):
        return int(word), end
    raise TomlError(line, "value %r is not a string, integer, boolean or array"
                    % word[:40])


def _skip_blank(text, pos, line):
    """Spaces, newlines and comments inside an array; returns (pos, line)."""
    while pos < len(text):
        char = text[pos]
        if char in " \t":
            pos += 1
        elif char == "\n":
            pos += 1
            line += 1
        elif char == "#":
            newline = text.find("\n", pos)
            end = len(text) if newline < 0 else newline
            if any(_is_control(c) for c in text[pos:end]):
                raise TomlError(line, "control character in a comment")
            pos = end
        else:
            break
    return pos, line


def _value(text, pos, line):
    """A value at pos; returns (value, pos, line) since an array may span lines."""
    if text[pos:pos + 1] != "[":
        if pos >= len(text) or text[pos] in "\n#":
            raise TomlError(line, "a value is expected after =")
        value, pos = _scalar(text, pos, line)
        return value, pos, line
    items = []
    pos, line = _skip_blank(text, pos + 1, line)
    while True:
        if pos >= len(text):
            raise TomlError(line, "array not closed")
        if text[pos] == "]":
            return items, pos + 1, line
        if text[pos] == "[":
            raise TomlError(line, "nested arrays are not accepted here")
        value, pos = _scalar(text, pos, line)
        if items and type(value) is not type(items[0]):
            raise TomlError(line, "an array's values must all be of one kind here")
        items.append(value)
        if len(items) > MAX_ARRAY:
            raise TomlError(line, "array longer than %d" % MAX_ARRAY)
        pos, line = _skip_blank(text, pos, line)
        if text[pos:pos + 1] == ",":
            pos, line = _skip_blank(text, pos + 1, line)
        elif text[pos:pos + 1] != "]":
            raise TomlError(line, "',' or ']' expected in the array")


def _header(text, pos, line):
    """[a], [a.b], [[a]], [[a.b]] at pos; returns (names, is_array, pos)."""
    array = text.startswith("[[", pos)
    pos = _skip_space(text, pos + (2 if array else 1))
    names = []
    while True:
        name, pos = _bare_key(text, pos, line)
        names.append(name)
        pos = _skip_space(text, pos)
        if text[pos:pos + 1] != ".":
            break
        if len(names) == 2:
            raise TomlError(line, "tables more than two names deep are not accepted here")
        pos = _skip_space(text, pos + 1)
    close = "]]" if array else "]"
    if not text.startswith(close, pos):
        raise TomlError(line, "table header must be [name], [name.name] or [[name]]")
    return tuple(names), array, pos + len(close)


def _open_table(document, names, array, line, state):
    """The dict the header's keys go into.  ``state`` keeps the ids of the tables
    defined by a header and of the lists made by [[...]], as TOML's rules need: a table
    is defined once, and only an array of tables takes [[...]] entries."""
    defined, table_arrays = state
    parent = document
    for depth, name in enumerate(names[:-1]):
        node = parent.get(name)
        if node is None:
            node = parent[name] = {}
        elif isinstance(node, list) and id(node) in table_arrays:
            node = node[-1]            # [[a]] then [a.b]: b goes into a's last table
        elif not isinstance(node, dict):
            raise TomlError(line, "%s is a value, not a table" % ".".join(names[:depth + 1]))
        parent = node
    last = names[-1]
    node = parent.get(last)
    shown = ".".join(names)
    if array:
        if node is None:
            node = parent[last] = []
            table_arrays.add(id(node))
        elif not isinstance(node, list) or id(node) not in table_arrays:
            raise TomlError(line, "[[%s]]: %s is already a table or a value" % (shown, last))
        if len(node) >= MAX_TABLES:
            raise TomlError(line, "more than %d [[%s]] tables" % (MAX_TABLES, shown))
        node.append({})
        defined.add(id(node[-1]))
        return node[-1]
    if node is None:
        node = parent[last] = {}
    elif not isinstance(node, dict):
        raise TomlError(line, "[%s]: %s is already a value or an array" % (shown, last))
    elif id(node) in defined:
        raise TomlError(line, "[%s] defined twice" % shown)
    defined.add(id(node))
    return node


def parse(text, lines=None):
    """The TOML subset as nested dicts; raises TomlError naming the line.  ``lines``, if
    given, receives {(path, key): line}, path a tuple of names (an entry of an array of
    tables is named by its index: ("schema-init", "wlan", 0)); () for top-level keys;
    (path, "") is the header's own line."""
    if len(text) > MAX_BYTES:
        raise TomlError(1, "file larger than %d bytes" % MAX_BYTES)
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        raise TomlError(text[:text.index("\r")].count("\n") + 1,
                        "a carriage return outside a line end")
    if text.count("\n") > MAX_LINES:
        raise TomlError(MAX_LINES, "more than %d lines" % MAX_LINES)
    document = {}
    state = (set(), set())
    table, path = document, ()
    pos, line = 0, 1
    while pos < len(text):
        pos = _skip_space(text, pos)
        char = text[pos:pos + 1]
        if char == "[":
            names, array, pos = _header(text, pos, line)
            table = _open_table(document, names, array, line, state)
            path = names
            if array:
                parent = document
                for name in names:
                    parent = parent[name] if isinstance(parent, dict) else parent[-1][name]
                path = names + (len(parent) - 1,)
            if lines is not None:
                lines[(path, "")] = line
        elif char not in ("", "\n", "#"):
            key, pos = _bare_key(text, pos, line)
            pos = _skip_space(text, pos)
            if text[pos:pos + 1] == ".":
                raise TomlError(line, "dotted keys are not accepted here")
            if text[pos:pos + 1] != "=":
                raise TomlError(line, "'=' expected after %s" % key)
            if key in table:
                raise TomlError(line, "%s given twice" % key)
            if lines is not None:
                lines[(path, key)] = line
            value, pos, line = _value(text, _skip_space(text, pos + 1), line)
            table[key] = value
        pos = _skip_space(text, pos)
        if text[pos:pos + 1] == "#":
            comment_end = text.find("\n", pos)
            comment = text[pos:len(text) if comment_end < 0 else comment_end]
            if any(_is_control(c) for c in comment):
                raise TomlError(line, "control character in a comment")
            pos += len(comment)
        if pos < len(text):
            if text[pos] != "\n":
                raise TomlError(line, "unexpected %r" % text[pos])
            pos += 1
            line += 1
    return document
