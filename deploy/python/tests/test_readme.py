"""The README's Python example is the file the lab test runs, to the letter."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_readme_shows_the_example_file_as_it_is():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Chaos tests in Python", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert block == (ROOT / "deploy/python/examples/test_teardown.py").read_text()
