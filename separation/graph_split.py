"""Cut the HT-Demucs graph into consecutive parts, each run as its own ONNX Runtime session.

ONNX Runtime holds most of one run's intermediate tensors until the run ends: the whole
network peaks near 2.5 GB. Run part by part, only the tensors that cross a cut (the U-Net
skips, mostly) live between parts, and a chunk peaks near 0.6 GB above the weights.
The cut is made once, at setup, by `stembot models fetch`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto

SPLIT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class Part:
    file: str
    inputs: list[str]
    outputs: list[str]


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the parts are, and which source file and cut produced them."""

    version: int
    source_sha256: str
    graph_inputs: list[str]
    graph_outputs: list[str]
    parts: list[Part]

    def save(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        raw = json.loads((folder / MANIFEST).read_text())
        return cls(
            version=raw["version"],
            source_sha256=raw["source_sha256"],
            graph_inputs=raw["graph_inputs"],
            graph_outputs=raw["graph_outputs"],
            parts=[Part(**p) for p in raw["parts"]],
        )

    def last_use(self) -> dict[str, int]:
        """For each tensor, the index of the last part that reads it."""
        last: dict[str, int] = {}
        for index, part in enumerate(self.parts):
            for name in part.inputs:
                last[name] = index
        for name in self.graph_outputs:
            last[name] = len(self.parts)
        return last


def split_model(source: Path, dest: Path, source_sha256: str, count: int = 12) -> Manifest:
    """Write `count` part models and a manifest into `dest`; outputs match the whole graph."""
    import onnx  # setup-time only

    model = onnx.shape_inference.infer_shapes(onnx.load(str(source)))
    graph = model.graph
    cuts = _cut_points(graph, count)
    dest.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, (start, end) in enumerate(pairwise(cuts)):
        part_model, inputs, outputs = _part(model, start, end, f"part{index}")
        name = f"part-{index:02d}.onnx"
        onnx.save(part_model, str(dest / name))
        parts.append(Part(name, inputs, outputs))
    manifest = Manifest(
        version=SPLIT_VERSION,
        source_sha256=source_sha256,
        graph_inputs=[i.name for i in graph.input],
        graph_outputs=[o.name for o in graph.output],
        parts=parts,
    )
    manifest.save(dest)
    return manifest


def _cut_points(graph: GraphProto, count: int) -> list[int]:
    """Cut between nodes so that each part has about as many computing nodes."""
    nodes = list(graph.node)
    computing = [i for i, node in enumerate(nodes) if node.op_type != "Constant"]
    inner = [computing[len(computing) * k // count] for k in range(1, count)]
    return [0, *inner, len(nodes)]


def _part(
    model: ModelProto, start: int, end: int, name: str
) -> tuple[ModelProto, list[str], list[str]]:
    """Nodes [start, end) as a model whose inputs and outputs are the tensors crossing the cuts."""
    from onnx import TensorProto, helper

    graph = model.graph
    nodes = list(graph.node)
    initializers = {i.name: i for i in graph.initializer}
    constants = {o: n for n in nodes if n.op_type == "Constant" for o in n.output}
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*graph.value_info, *graph.input, *graph.output]
    }
    produced_at = {o: i for i, n in enumerate(nodes) for o in n.output}
    last_read = {x: i for i, n in enumerate(nodes) for x in n.input}
    for output in graph.output:
        last_read[output.name] = len(nodes)

    body = [n for n in nodes[start:end] if n.op_type != "Constant"]
    read = sorted({x for n in body for x in n.input if x})
    # Constants are tiny and often read far away: each part gets its own copy.
    local_constants = [constants[x] for x in read if x in constants]
    inputs = [
        x
        for x in read
        if x not in initializers and x not in constants and produced_at.get(x, -1) < start
    ]
    outputs = sorted({o for n in body for o in n.output if last_read.get(o, -1) >= end})
    part_graph = helper.make_graph(
        local_constants + body,
        name,
        [helper.make_tensor_value_info(x, types.get(x) or TensorProto.FLOAT, None) for x in inputs],
        [helper.make_empty_tensor_value_info(x) for x in outputs],
        [initializers[x] for x in read if x in initializers],
    )
    part_model = helper.make_model(
        part_graph, opset_imports=model.opset_import, ir_version=model.ir_version
    )
    return part_model, inputs, outputs
