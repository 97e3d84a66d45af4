"""Condition assembly: reorder by name, reject anything incomplete or non-finite (never a zero)."""
import math

import numpy as np
import pytest

from ebgan_mdn_ros.control.state_assembly import JointReading, Rejected, StateAssembler, parse_condition_names

JOINTS = ("shoulder", "elbow")


def test_condition_follows_the_models_names_not_the_messages_order():
    assembler = StateAssembler(("elbow.position", "goal.1", "shoulder.velocity", "goal.0"), JOINTS)
    reading = assembler.read_joints(["elbow", "gripper", "shoulder"], [2.0, 9.0, 1.0], [0.2, 9.9, 0.1])
    goal = assembler.check_goal([5.0, 6.0])
    assert assembler.condition(reading, goal).tolist() == [2.0, 6.0, 0.1, 5.0]


def test_shuffled_joint_order_gives_the_same_reading():
    assembler = StateAssembler(("shoulder.position", "elbow.position"), JOINTS)
    a = assembler.read_joints(["shoulder", "elbow"], [0.3, -0.7])
    b = assembler.read_joints(["elbow", "shoulder"], [-0.7, 0.3])
    np.testing.assert_array_equal(a.position, b.position)
    np.testing.assert_array_equal(a.position, [0.3, -0.7])


def test_missing_joint_is_rejected_naming_it():
    assembler = StateAssembler(("shoulder.position",), JOINTS)
    result = assembler.read_joints(["shoulder"], [0.1])
    assert isinstance(result, Rejected) and "elbow" in result.reason and not result


def test_a_wholly_misnamed_joint_set_is_rejected():
    result = StateAssembler(("shoulder.position",), JOINTS).read_joints(["joint_1", "joint_2"], [0.0, 0.0])
    assert isinstance(result, Rejected) and "none of joint_names" in result.reason


@pytest.mark.parametrize("names,position,velocity,needle", [
    (["shoulder", "elbow"], [0.1], None, "1 positions for 2 names"),
    (["shoulder", "elbow"], [0.1, math.nan], None, "non-finite position for ['elbow']"),
    (["shoulder", "elbow"], [0.1, math.inf], None, "non-finite position"),
    (["shoulder", "elbow", "shoulder"], [0.1, 0.2, 0.3], None, "duplicate"),
])
def test_malformed_states_are_rejected(names, position, velocity, needle):
    result = StateAssembler(("shoulder.position", "elbow.position"), JOINTS).read_joints(names, position, velocity)
    assert isinstance(result, Rejected) and needle in result.reason


def test_velocity_is_required_only_when_the_model_reads_it():
    reads_velocity = StateAssembler(("elbow.velocity",), JOINTS)
    assert "velocities" in reads_velocity.read_joints(list(JOINTS), [0.0, 0.0], []).reason
    assert "2 velocities" not in reads_velocity.read_joints(list(JOINTS), [0.0, 0.0], [1.0]).reason
    assert isinstance(reads_velocity.read_joints(list(JOINTS), [0.0, 0.0], [0.0, math.nan]), Rejected)
    positions_only = StateAssembler(("elbow.position",), JOINTS)
    assert isinstance(positions_only.read_joints(list(JOINTS), [0.0, 0.0], []), JointReading)


def test_goal_must_arrive_have_the_models_size_and_be_finite():
    assembler = StateAssembler(("goal.0", "goal.1"), JOINTS)
    assert "no goal" in assembler.check_goal(None).reason
    assert "3 values" in assembler.check_goal([1.0, 2.0, 3.0]).reason
    assert "non-finite" in assembler.check_goal([1.0, math.nan]).reason
    assert assembler.check_goal([1.0, 2.0]).tolist() == [1.0, 2.0]
    no_goal = StateAssembler(("elbow.position",), JOINTS)
    assert no_goal.goal_size == 0 and no_goal.check_goal(None).shape == (0,)


@pytest.mark.parametrize("names,needle", [
    (("wrist.position",), "'wrist'"),
    (("elbow.effort",), "not '<joint>.position'"),
    (("goal.1",), "goal.0 .. goal.0"),
])
def test_a_model_the_node_cannot_serve_fails_at_start_up(names, needle):
    with pytest.raises(ValueError, match=None) as info:
        parse_condition_names(names, JOINTS)
    assert needle in str(info.value)
