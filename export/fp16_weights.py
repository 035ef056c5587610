"""Shipping-size graphs: float initializers stored as fp16 and cast back to fp32 inside the graph.

Each float32 initializer W (of at least `min_elements`) becomes an fp16 initializer
`W__fp16` and a `Cast(to=FLOAT)` node producing `W` at the start of the graph. The graph's
inputs, outputs and arithmetic stay fp32; onnxruntime constant-folds the casts when the
session is created (graph optimisation level "all"), so the speed is that of the fp32 graph
and the file is half the size. The only change is the rounding of the weights to fp16.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def store_initializers_fp16(model: onnx.ModelProto, min_elements: int = 16) -> onnx.ModelProto:
    graph = model.graph
    kept: list[onnx.TensorProto] = []
    casts: list[onnx.NodeProto] = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
        kept.append(half)
        casts.append(
            helper.make_node(
                "Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "__upcast"
            )
        )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model
