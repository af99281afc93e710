"""One command line of a .svc file (``exec_pre=``, ``condition=``, ``exec_post=``,
``exec_reload=``, ``exec_stop=``, ``exec_stop_post=``): prefixes, then words.

The format (docs/spec.md, "Command lines"):

* Prefixes first, any of ``-`` (a failure is not a failure), ``+`` (full privileges:
  no user drop, no sandbox), ``!`` (no user drop, the sandbox applies), ``@`` (the
  second word is argv[0]), ``:`` (no ``$VAR`` expansion); each at most once.
* Then words separated by blanks; a word holding blanks, quotes or backslashes is
  written in double quotes, where ``\\"`` and ``\\\\`` stand for ``"`` and ``\\``.
* The first word is an absolute path.

``split`` reads it, ``join`` writes it (the unit importer uses ``join``, so what it
writes is read back word for word).  Pure: no system call, no exception on any input.
"""

PREFIXES = "-+!@:"
MAX_WORDS = 256


def split(text):
    """``((prefixes, argv), None)`` or ``(None, reason)``."""
    rest = text.strip(" \t")
    prefixes = ""
    while rest[:1] and rest[0] in PREFIXES:
        if rest[0] in prefixes:
            return None, "the prefix %r is given twice" % rest[0]
        prefixes += rest[0]
        rest = rest[1:]
    words = []
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if ch in " \t":
            i += 1
            continue
        if ch == '"':
            word, i = _quoted(rest, i + 1)
            if word is None:
                return None, "a quote is not closed"
            if i < n and rest[i] not in " \t":
                return None, "a closing quote must end its word"
        else:
            start = i
            while i < n and rest[i] not in " \t":
                if rest[i] == '"':
                    return None, "a quote inside a word (quote the whole word)"
                i += 1
            word = rest[start:i]
        words.append(word)
        if len(words) > MAX_WORDS:
            return None, "more than %d words" % MAX_WORDS
    if "@" in prefixes and len(words) < 2:
        return None, "the @ prefix needs a path and an argv[0]"
    if not words:
        return None, "no command"
    if not words[0].startswith("/"):
        return None, "%r is not an absolute path" % words[0][:60]
    return (prefixes, tuple(words)), None


def _quoted(text, i):
    """The quoted word starting after its opening quote at ``i``: (word, index after
    the closing quote) or (None, i)."""
    out = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    return None, i


def quote(word):
    """One word as ``split`` reads it back."""
    if word and not any(c in word for c in ' \t"\\'):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def join(prefixes, argv):
    """The text of a command line: ``split(join(p, a)) == ((p, a), None)``."""
    return prefixes + " ".join(quote(word) for word in argv)
