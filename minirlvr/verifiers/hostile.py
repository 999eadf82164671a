"""Hostile responses for the verifiers' linear-time guarantee: families of texts that can be built at any size,
each aimed at a way a text scan can go superlinear (regex backtracking over runs of one character, nesting,
long lines, a decision per end mark that looks back or ahead). The tests check each verifier's cost at two
sizes of every family; the hostile benchmark (bench.py) times them at 1 MB. Deliberately NOT here: random
texts (a family must be the same text at every size, so that costs at two sizes compare) or any timing.
"""

# A paragraph like a real response, dense in everything the checks look at: abbreviations, decimals, emphasis,
# placeholders, titles, bullets, postscripts, capitals, quotes, ellipses.
PARAGRAPH = ("Dr. Smith wrote 3.5 pages, e.g. on *tea* [name] <<T>>.\n* item one\n- item two\n"
             "Section 1 P.S. WHAT? \"Yes!\" she said... THE END\n\n")

# name -> the unit repeated to the requested size
REPEATED = {
    "1MB": PARAGRAPH,  # the realistic one (the name is historical: tests build it at 1 MB)
    "brackets": "[", "newlines": "\n", "space-newlines": " \n", "angles": "<<", "stars": "*", "letters": "a",
    "bangs": "!", "dot-caps": ". A", "initials": "a. B\n", "bracket-lines": "[\n",
    # repeated abbreviations and end-mark runs: a sentence decision at every few characters
    "P.S.": "P.S. ", "e.g.": "e.g. ", "Mr.": "Mr. ", "U.S.": "U.S. ", "ellipses": "...", "?!": "?!",
}
SUFFIX = {"newlines": "x", "space-newlines": "* a"}  # a final token after the run
NESTED = {"nested": ("[", "", "]"), "nested-json": ('{"a":', "1", "}")}  # opener * k + middle + closer * k

FAMILIES = tuple(REPEATED) + tuple(NESTED)
ABBREVIATIONS = ("P.S.", "e.g.", "Mr.", "U.S.", "ellipses", "?!")


def hostile_text(family, size):
    """The text of `family` with about `size` characters (exactly `size` for the repeated families)."""
    if family in NESTED:
        opener, middle, closer = NESTED[family]
        k = max(1, (size - len(middle)) // (len(opener) + len(closer)))
        return opener * k + middle + closer * k
    if family not in REPEATED:
        raise KeyError(f"unknown hostile family {family!r}; known: {', '.join(FAMILIES)}")
    unit, suffix = REPEATED[family], SUFFIX.get(family, "")
    body = size - len(suffix)
    return (unit * (body // len(unit) + 1))[:body] + suffix
