"""The fused decision graph uses only operators that onnxruntime's CUDA provider implements.

No GPU is needed: an operator without a CUDA kernel (for its opset and element types) would run on the
CPU, and onnxruntime would copy tensors to the host and back around it, silently breaking the promise
that a decision stays on the device. The list below was checked row by row against onnxruntime's
docs/OperatorKernels.md (CUDAExecutionProvider section, commit 001d12d2, opset 17); an exporter change
that brings in a new operator or type fails here until it has been checked the same way.
"""
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, shape_inference

from ebgan_mdn_ros.export.exporter import OPSET
from model_factory import export_checkpoint, random_checkpoint

ROOT = Path(__file__).resolve().parents[1]

F, I64, I32, B = "FLOAT", "INT64", "INT32", "BOOL"
# op -> element types allowed on its inputs and outputs, as the CUDA table lists them for opset 17
CUDA_KERNELS = {
    "Add": {F, I64}, "Sub": {F, I64}, "Mul": {F, I64}, "Div": {F}, "And": {B}, "Cast": {B, I64},
    "Clip": {I64, F}, "Concat": {I64, F}, "Constant": {F, I32, I64}, "ConstantOfShape": {I64},
    "CumSum": {F, I32}, "Equal": {I64, B}, "Expand": {I64}, "Gather": {I64}, "GatherElements": {F, I64},
    "Gemm": {F}, "MatMul": {F}, "GreaterOrEqual": {F, I64, B}, "Less": {I64, B}, "LessOrEqual": {F, B},
    "Max": {F}, "Min": {F}, "ReduceSum": {I64}, "Relu": {F}, "Reshape": {F, I64}, "Shape": {F, I64},
    "Slice": {F, I64}, "Softmax": {F}, "Softplus": {F}, "Unsqueeze": {F, I64}, "Where": {B, I64},
}


def signatures(path: Path) -> set[tuple[str, frozenset]]:
    model = shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: TensorProto.DataType.Name(v.type.tensor_type.elem_type)
             for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    types.update({t.name: TensorProto.DataType.Name(t.data_type) for t in model.graph.initializer})
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)] == [("", 17)]
    return {(node.op_type, frozenset(types.get(name, "unknown") for name in [*node.input, *node.output] if name))
            for node in model.graph.node}


def uncovered(path: Path) -> list:
    return sorted((op, sorted(kinds)) for op, kinds in signatures(path)
                  if op not in CUDA_KERNELS or not kinds <= CUDA_KERNELS[op])


@pytest.mark.parametrize("model", ["ik_2link", "multiroute"])
def test_shipped_decision_graphs_have_cuda_kernels_for_every_node(model):
    assert uncovered(ROOT / "models" / model / "decision.onnx") == []


def test_a_fresh_export_has_cuda_kernels_for_every_node(tmp_path):
    ckpt = random_checkpoint(("a", "b", "c"), ("x", "y"), num_components=3, hidden_sizes=(16, 16), seed=1)
    assert uncovered(export_checkpoint(ckpt, tmp_path / "model") / "decision.onnx") == []


def test_the_check_catches_an_operator_without_a_cuda_kernel(tmp_path):
    # A graph with an op absent from the table (and an unchecked type) must be reported.
    node = onnx.helper.make_node("Erf", ["x"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", TensorProto.DOUBLE, [2])],
                                   [onnx.helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2])])
    path = tmp_path / "erf.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(path))
    assert uncovered(path) == [("Erf", ["DOUBLE"])]
