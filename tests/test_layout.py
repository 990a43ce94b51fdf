"""Small modules with names that say what they own (STYLE.md, habit 9): no tsdiff source file passes
600 lines."""

from pathlib import Path

MAX_LINES = 600


def test_no_module_over_600_lines():
    root = Path(__file__).resolve().parents[1] / "tsdiff"
    sizes = {str(p.relative_to(root.parent)): len(p.read_text().splitlines()) for p in root.rglob("*.py")}
    assert len(sizes) > 100  # the walk found the package
    too_long = {p: n for p, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"split these modules (over {MAX_LINES} lines): {too_long}"
