"""The Table 2 runner: every row, finite bounds above the entropy, metrics reused from checkpoints."""
import math

import pytest

from catlib.experiments import toy50


def test_smoke_run_gives_every_row_and_reuses_checkpoints(tmp_path):
    rows = toy50.run_toy50("smoke", checkpoint_dir=tmp_path, progress=False)
    assert [r["name"] for r in rows] == [name for name, *_ in toy50.TABLE2]
    entropy = toy50.Toy50().entropy_bits
    for r in rows:
        assert math.isfinite(r["elbo_bits"]) and math.isfinite(r["iwbo_bits"])
        # expected bounds over the exact data distribution: never below the entropy (bar noise)
        assert r["iwbo_bits"] > entropy - 0.05 and r["steps"] == toy50.PROFILES["smoke"].steps
    again = toy50.run_toy50("smoke", checkpoint_dir=tmp_path, progress=False)
    assert [r["elbo_bits"] for r in again] == [r["elbo_bits"] for r in rows]  # read, not retrained
    model = toy50.load_model("argmax-binary", "smoke", tmp_path)
    assert model.sample(10).shape == (10, 1)


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="profile must be one of"):
        toy50.run_toy50("huge", checkpoint_dir=None)
