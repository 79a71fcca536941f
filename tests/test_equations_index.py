"""docs/equations.md against the code, both ways: every place a row names exists and cites
the row's label (so grepping the label lands there), and every `eq. N` / `Algorithm N` the
library cites has a row naming its file."""

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "docs" / "equations.md"
LABEL = re.compile(r"^(eq\. \d+(-\d+)?|Algorithm \d+|sec\. \d+(\.\d+)*|appendix [A-Z]|Table \d+|definition)$")
CITED = re.compile(r"\b(eqs?\.|Algorithm) (\d+)(?:-(\d+))?")


def index_rows():
    """(label, [(file, [qualified names])]) for every row above "Not in tinydiff yet"."""
    text = INDEX.read_text().split("## Not in tinydiff yet")[0]
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[1] in ("equation", "---"):
            continue
        places = []
        for part in cells[3].split(";"):
            names = re.findall(r"`([^`]+)`", part)
            assert names and names[0].endswith(".py"), f"{cells[1]}: a place must start with `file.py`, got {part!r}"
            places.append((names[0], names[1:]))
        rows.append((cells[1], places))
    return rows


ROWS = index_rows()


def resolve(path, qualname):
    module = importlib.import_module(path[:-3].replace("/", "."))
    obj = module
    for attr in qualname.split("."):
        obj = getattr(obj, attr)
    return obj


def numbers(label):
    """The equation numbers a label covers: "eq. 6-7" -> {6, 7}."""
    m = CITED.match(label)
    first, last = int(m.group(2)), int(m.group(3) or m.group(2))
    return set(range(first, last + 1))


def test_the_index_has_rows_and_every_label_is_greppable():
    assert len(ROWS) > 30
    bad = [label for label, _ in ROWS if not LABEL.match(label)]
    assert not bad, f"labels not written as the code writes them: {bad}"


@pytest.mark.parametrize("label,places", ROWS, ids=[f"{r[0]}:{r[1][0][0]}" for r in ROWS])
def test_every_named_place_exists_and_cites_its_label(label, places):
    for path, names in places:
        assert (ROOT / path).is_file(), f"{path} does not exist"
        if not names:  # the module docstring or comments hold the formula
            if label != "definition":
                assert label in (ROOT / path).read_text(), f"{path} does not cite {label!r}"
            continue
        for name in names:
            obj = resolve(path, name)
            if label != "definition":
                assert label in inspect.getsource(obj), f"{path} : {name} does not cite {label!r}"


def test_every_equation_the_library_cites_has_a_row_naming_its_file():
    covered = {}
    for label, places in ROWS:
        if CITED.match(label):
            kind = "Algorithm" if label.startswith("Algorithm") else "eq."
            for path, _ in places:
                covered.setdefault((path, kind), set()).update(numbers(label))
    missing = []
    for file in sorted((ROOT / "tinydiff").rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        for m in CITED.finditer(file.read_text()):
            kind = "Algorithm" if m.group(1) == "Algorithm" else "eq."
            cited = set(range(int(m.group(2)), int(m.group(3) or m.group(2)) + 1))
            if not cited <= covered.get((path, kind), set()):
                missing.append(f"{path}: {m.group(0)}")
    assert not missing, "cited in the code but not in docs/equations.md: " + ", ".join(sorted(set(missing)))
