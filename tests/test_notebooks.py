"""The walkthrough notebook runs top to bottom (executed with nbclient, offline, on bundled imagery)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detect.core.weights import weights_dir

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.skipif(not (weights_dir() / "ships-s2.pt").is_file(), reason="ship weights not in this checkout")
def test_walkthrough_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="dev extra: pip install -e '.[dev]'")
    nbclient = pytest.importorskip("nbclient", reason="dev extra: pip install -e '.[dev]'")
    pytest.importorskip("ipykernel", reason="dev extra: pip install -e '.[dev]'")
    nb = nbformat.read(NOTEBOOKS / "walkthrough.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "distinct vessels >=" in text
    assert "## Daily counts" in text  # the report was read back
    assert any("image/png" in o.get("data", {}) for o in outputs)
