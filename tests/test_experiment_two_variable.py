"""The two-variable experiment: a tiny run trains, evaluates, stores its metrics and reuses them."""
import dataclasses

import pytest

from catlib.experiments.two_variable import PROFILES, load_model, run_two_variable


def test_tiny_run_stores_and_reuses_metrics(tmp_path, monkeypatch):
    tiny = dataclasses.replace(PROFILES["smoke"], steps=20, iwbo_k=5, elbo_samples=5, num_samples=200,
                               embedding_samples=20)
    monkeypatch.setitem(PROFILES, "smoke", tiny)
    rows = run_two_variable("smoke", tmp_path, progress=False)
    assert [r["name"] for r in rows] == ["catnf", "argmax-binary", "trufl"]
    for r in rows:
        assert r["log_px"] < 0 and r["elbo"] <= r["log_px"] + 0.5
        assert len(r["embedding_z"]) == 20 and r["steps"] == 20
    by = {r["name"]: r for r in rows}
    assert by["argmax-binary"]["reconstruction"] == 0 and by["catnf"]["reconstruction"] < 0
    assert 0 <= by["trufl"]["rejection_rate"] < 1 and by["catnf"]["rejection_rate"] is None
    again = run_two_variable("smoke", tmp_path, progress=False)
    assert [r["log_px"] for r in again] == [r["log_px"] for r in rows]  # read back, not retrained
    model = load_model("trufl", "smoke", tmp_path)
    assert model.sample(4).shape == (4, 2)


def test_unknown_profile():
    with pytest.raises(ValueError, match="profile"):
        run_two_variable("huge", None)
