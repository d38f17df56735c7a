"""`make docs` / `make docs-check`: generated files are written, and a stale one fails the check."""

from pathlib import Path

import pytest

from devserver import docs

GENERATED = {"asyncapi.json": '{"asyncapi": "3.0.0"}\n', "events.md": "# Events\n"}


@pytest.fixture(autouse=True)
def fixed_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docs, "render", lambda: dict(GENERATED))


def test_write_then_check_passes(tmp_path: Path) -> None:
    assert docs.main(["write", "--docs-dir", str(tmp_path)]) == 0
    assert (tmp_path / "events.md").read_text() == "# Events\n"
    assert docs.main(["check", "--docs-dir", str(tmp_path)]) == 0


def test_a_stale_or_missing_file_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs.main(["write", "--docs-dir", str(tmp_path)])
    (tmp_path / "events.md").write_text("# Events (old)\n")
    (tmp_path / "asyncapi.json").unlink()
    assert docs.main(["check", "--docs-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "events.md is stale" in err and "asyncapi.json is stale" in err
