import numpy as np
import pytest

from ebgan_mdn_ros.data.demonstrations import load_demonstrations


def _write_csv(path, text):
    path.write_text(text)
    return path


def test_npz_with_names(tmp_path):
    path = tmp_path / "demos.npz"
    np.savez(path, conditions=np.arange(6.0).reshape(3, 2), actions=np.array([1.0, 2.0, 3.0]),
             condition_names=np.array(["goal.0", "goal.1"]), action_names=np.array(["elbow"]))
    demos = load_demonstrations(path)
    assert demos.conditions.dtype == np.float32 and demos.actions.shape == (3, 1)
    assert demos.condition_names == ("goal.0", "goal.1") and demos.action_names == ("elbow",)
    spec = demos.spec()
    assert spec.action_low[0] < 1.0 and spec.action_high[0] > 3.0


def test_npz_default_names(tmp_path):
    path = tmp_path / "demos.npz"
    np.savez(path, conditions=np.zeros((4, 2)), actions=np.ones((4, 3)))
    demos = load_demonstrations(path)
    assert demos.condition_names == ("condition.0", "condition.1")
    assert demos.action_names == ("action.0", "action.1", "action.2")


def test_csv_named_columns(tmp_path):
    path = _write_csv(tmp_path / "d.csv", "t,x,y,q\n0,1,2,0.5\n1,3,4,0.6\n")
    demos = load_demonstrations(path, ["y", "x"], ["q"])
    assert demos.conditions.tolist() == [[2.0, 1.0], [4.0, 3.0]]  # in the order the user named them
    assert demos.actions.tolist() == [[0.5], [pytest.approx(0.6)]]
    assert demos.condition_names == ("y", "x")


def test_csv_missing_column_names_it(tmp_path):
    path = _write_csv(tmp_path / "d.csv", "x,q\n0,1\n1,2\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['y'\]"):
        load_demonstrations(path, ["x", "y"], ["q"])


def test_csv_needs_columns_and_rejects_overlap(tmp_path):
    path = _write_csv(tmp_path / "d.csv", "x,q\n0,1\n1,2\n")
    with pytest.raises(ValueError, match="--condition-columns"):
        load_demonstrations(path)
    with pytest.raises(ValueError, match="both condition and action"):
        load_demonstrations(path, ["x"], ["x"])


def test_csv_ragged_row_and_text_value(tmp_path):
    with pytest.raises(ValueError, match="line 3 has 1 fields"):
        load_demonstrations(_write_csv(tmp_path / "a.csv", "x,q\n0,1\n1\n"), ["x"], ["q"])
    with pytest.raises(ValueError, match="line 2"):
        load_demonstrations(_write_csv(tmp_path / "b.csv", "x,q\nabc,1\n1,2\n"), ["x"], ["q"])


def test_nan_is_rejected_with_its_place(tmp_path):
    path = _write_csv(tmp_path / "d.csv", "x,q\n0,1\n1,nan\n2,3\n")
    with pytest.raises(ValueError, match="NaN.*actions.*row 1.*'q'"):
        load_demonstrations(path, ["x"], ["q"])
    npz = tmp_path / "d.npz"
    np.savez(npz, conditions=np.array([[0.0], [np.nan]]), actions=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="NaN.*conditions"):
        load_demonstrations(npz)


def test_mismatched_lengths_and_missing_arrays(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, conditions=np.zeros((5, 2)), actions=np.zeros((4, 1)))
    with pytest.raises(ValueError, match="5 conditions but 4 actions"):
        load_demonstrations(path)
    np.savez(path, conditions=np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"missing array\(s\) \['actions'\]"):
        load_demonstrations(path)
    np.savez(path, conditions=np.zeros((2, 2)), actions=np.zeros((2, 1)), action_names=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="action_names has 2 names for 1 columns"):
        load_demonstrations(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_demonstrations(tmp_path / "none.npz")
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(ValueError, match="expected .npz or .csv"):
        load_demonstrations(tmp_path / "d.json")
