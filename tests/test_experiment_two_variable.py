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


def test_results_fields_status_entropy_and_budget():
    from catlib.experiments.two_variable import TOLERANCE, result_fields, run_budget_ratio

    cpu = PROFILES["cpu"]
    assert run_budget_ratio(cpu) is None and run_budget_ratio(PROFILES["paper"]) is None  # the paper gives no length
    row = result_fields(-1.92, -2.0, "cpu", cpu, log_px=True)  # 0.08 nats off, more than twice the tolerance
    assert row["status"] == "differs" and row["budget_ratio"] is None
    assert row["entropy"] == pytest.approx(1.906, abs=5e-4)
    assert row["gap_to_entropy"] == pytest.approx(1.92 - row["entropy"])  # the NLL minus the entropy
    assert result_fields(-1.983 + TOLERANCE / 2, -1.983, "cpu", cpu)["status"] == "reproduced"
    assert result_fields(-1.983 + 1.5 * TOLERANCE, -1.983, "cpu", cpu)["status"] == "close"
    assert "entropy" not in result_fields(0.0, 0.0, "cpu", cpu)
    assert result_fields(-1.91, None, "cpu", cpu)["status"] == "ours only"
    assert result_fields(-1.91, -1.915, "smoke", PROFILES["smoke"])["status"] == "smoke"


def test_full_is_the_paper_profile(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"paper[/\\]trufl\.pt"):  # the folder of the resolved profile
        load_model("trufl", "full", tmp_path)
    assert PROFILES["paper"].latent_dim == 2 and PROFILES["paper"].batch_size == 64
