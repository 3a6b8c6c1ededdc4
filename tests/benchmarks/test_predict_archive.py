"""The archive benchmark runs end to end on a tiny archive (figures are not checked)."""

from benchmarks import predict_archive
from tests.conftest import ROOT


def test_tiny_archive_run(tmp_path, monkeypatch):
    monkeypatch.setattr(predict_archive, "RESULTS", tmp_path / "results")
    ckpt = ROOT / "tests" / "fixtures" / "torchaudio_era" / "tiny.ckpt"
    results = predict_archive.main(
        [
            "--ckpt",
            str(ckpt),
            "--clips",
            "3",
            "--long-minutes",
            "1",
            "--work",
            str(tmp_path / "w"),
            "--name",
            "tiny",
        ]
    )
    assert results["new"]["rc"] == 3  # the two corrupt files
    assert sorted(results["new"]["failed_files"]) == ["corrupt1.wav", "corrupt2.flac"]
    assert results["new"]["peak_rss_mb"] > 50
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "| now (trainer.predict) |" in table
