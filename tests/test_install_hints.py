"""Install hints say what the README does: install the extra from the checkout."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "oneshot_rlvr"


def test_no_hint_installs_from_an_index_the_readme_does_not_use() -> None:
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "pip install 'oneshot-rlvr" in p.read_text()
                 or "pip install oneshot-rlvr" in p.read_text()]
    assert offenders == []


def test_plot_hint_names_the_checkout_install() -> None:
    from oneshot_rlvr.report.plots import INSTALL_HINT

    assert "-e '.[plots]'" in INSTALL_HINT and "constraints-cpu.txt" in INSTALL_HINT
