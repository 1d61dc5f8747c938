"""The HTML report renders with embedded PNG plots that decode, and shows findings/profile."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from trainforge_runtime.health import Finding
from trainforge_runtime.report import render_report


def test_report_embeds_decodable_plots(tmp_path: Path) -> None:
    history = {
        "loss": [2.0 * 0.95**i for i in range(50)],
        "val_loss": [(i * 10, 1.5 * 0.9**i) for i in range(5)],
        "train_accuracy": [(i * 10, 0.5 + 0.1 * i) for i in range(5)],
        "val_accuracy": [(i * 10, 0.45 + 0.1 * i) for i in range(5)],
        "learning_rate": [0.1] * 50,
    }
    cm = np.array([[9, 1, 0], [0, 8, 2], [1, 0, 9]])
    profile = {
        "rank": 0, "steps": 3,
        "phases_ms": {"data_loading": 1.0, "communication": 0.5, "compute": 3.0, "total": 4.5},
        "top_operators": [
            {"name": "aten::addmm", "calls": 6, "self_cpu_ms": 1.2, "cpu_total_ms": 1.5},
        ],
    }  # fmt: skip
    findings = [Finding("overfitting", 40, "val_loss <rising>", "warn")]
    out = render_report(
        tmp_path / "report.html", history, confusion_matrix=cm, profile_summary=profile,
        findings=findings, metadata={"job": "digits", "worldSize": 2}, class_names=["a", "b", "c"],
    )  # fmt: skip
    page = out.read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    alts = [alt for alt, _ in images]
    assert alts == ["loss", "accuracy", "learning_rate", "confusion matrix", "profile phases"]
    for _, data in images:
        with Image.open(io.BytesIO(base64.b64decode(data))) as img:
            img.verify()
            assert img.format == "PNG"
            assert img.size[0] > 100
    assert "aten::addmm" in page
    assert "overfitting" in page
    assert "val_loss &lt;rising&gt;" in page  # escaped, not raw HTML
    assert "worldSize" in page


def test_report_with_nothing_but_history(tmp_path: Path) -> None:
    page = render_report(tmp_path / "r.html", {"loss": []}).read_text()
    assert "No metrics recorded" in page
    assert "No health rule fired" in page


def test_report_draws_model_against_baseline_and_champion(tmp_path: Path) -> None:
    scores = {"test_accuracy": 0.95, "baseline_test_accuracy": 0.11, "test_f1_macro": 0.9}
    page = render_report(
        tmp_path / "r.html", {"loss": [1.0, 0.5]}, scores=scores, champion={"test_accuracy": 0.93}
    ).read_text()
    assert "<h2>Model vs baseline</h2>" in page
    (data,) = re.findall(r'<img alt="model vs baseline" src="data:image/png;base64,([^"]+)"', page)
    with Image.open(io.BytesIO(base64.b64decode(data))) as img:
        assert img.format == "PNG"
    # No baseline in the scores: no comparison section.
    plain = render_report(tmp_path / "p.html", {"loss": [1.0]}, scores={"test_accuracy": 0.9})
    assert "Model vs baseline" not in plain.read_text()
