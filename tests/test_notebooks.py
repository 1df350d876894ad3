"""The example notebooks run from a clean kernel, as written (with their small setting)."""

import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def execute(name, tmp_path, monkeypatch):
    monkeypatch.setenv("EFFNET_TF_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(os.path.join(EXAMPLES, name), as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return ["".join(o.get("text", "") for o in cell.get("outputs", []))
            for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("name", ["quickstart.ipynb", "colab_tpu.ipynb"])
def test_notebooks_are_committed_without_outputs(name):
    notebook = nbformat.read(os.path.join(EXAMPLES, name), as_version=4)
    assert all(not cell.get("outputs") and not cell.get("execution_count")
               for cell in notebook.cells if cell.cell_type == "code")


def test_quickstart_runs(tmp_path, monkeypatch):
    outputs = "\n".join(execute("quickstart.ipynb", tmp_path, monkeypatch))
    assert "| b7 | table |" in outputs and "66.66M" in outputs
    assert "stride 32" in outputs and "(1, 8, 8, 384)" in outputs  # b3 at 256 px
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert "max difference to Keras" in outputs
    top3 = re.findall(r"^class_([0-3]): (\d\.\d{3})$", outputs, re.MULTILINE)
    assert len(top3) == 3 and len({k for k, _ in top3}) == 3  # three distinct classes
    probs = [float(p) for _, p in top3]
    assert probs == sorted(probs, reverse=True)
    assert (tmp_path / "model.tflite").stat().st_size > 100_000


@pytest.mark.slow
def test_colab_tpu_notebook_falls_back_and_resumes(tmp_path, monkeypatch):
    outputs = "\n".join(execute("colab_tpu.ipynb", tmp_path, monkeypatch))
    assert "no TPU: JAX on CPU, two simulated devices, tiny config" in outputs
    assert "Backend jax. Devices: 2 x cpu" in outputs
    assert "Done at step 16" in outputs
    assert "resuming at step 16" in outputs and "Done at step 24" in outputs
