"""Build an ``nn.Module`` from an :class:`~cnnviz.core.graph.ArchGraph`.

The built model nests its submodules along the nodes' module paths, so its ``state_dict`` keys
are those of the model the graph was imported from (``layer1.0.conv1.weight``) and weights load
directly. ``forward`` runs the nodes in topological order.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cnnviz.core import ops
from cnnviz.core.graph import ArchGraph
from cnnviz.errors import CnnvizError

FUNCTIONS_ATTR = "_cnnviz_functions"
"""Container of the modules of function nodes (add, cat, F.relu ...); they hold no weights, so
they add no ``state_dict`` keys, but being submodules they follow ``train()``/``eval()``."""


class BuildError(CnnvizError):
    """The graph cannot be built (invalid, or an opaque node lost its module)."""


class GraphModel(nn.Module):
    """An ``nn.Module`` that runs an ArchGraph.

    Attributes:
        graph_name: Name of the graph it was built from.
        input_names: Names of the input nodes, in the order ``forward`` takes them.
        output_names: Names of the output nodes.
        aux_output_names: Names of the outputs added in training mode (auxiliary logits).
    """

    def __init__(self, graph: ArchGraph) -> None:
        super().__init__()
        issues = graph.validate()
        if issues:
            raise BuildError(
                f"{graph.name} cannot be built: " + "; ".join(str(i) for i in issues[:5])
            )
        self.graph_name = graph.name
        self.add_module(FUNCTIONS_ATTR, nn.Module())
        functions = getattr(self, FUNCTIONS_ATTR)
        self.input_names: list[str] = graph.input_nodes
        self.output_names: list[str] = list(graph.outputs) or [graph.topological_order()[-1]]
        self.aux_output_names: list[str] = graph.live_aux_outputs()
        # Skipped in eval mode, so that inference costs what the model without them costs.
        self._training_only = frozenset(n.name for n in graph if n.training_only)
        self._steps: list[tuple[str, str, Any, list[str]]] = []
        self._callables: dict[str, Any] = {}
        # Probes: outputs of these nodes are kept in ``captured`` by every forward. Empty by
        # default, so training pays one falsy check per node and keeps no extra tensors.
        self.capture_names: frozenset[str] = frozenset()
        self.captured: dict[str, Any] = {}
        built: dict[str, nn.Module] = {}
        for name in graph.topological_order():
            node = graph[name]
            if node.kind == "input":
                continue
            if node.kind == "parameter":
                path = node.module_path or name
                container, attr = self._container(path)
                spec = ops.get("parameter")
                p = spec.resolve(node.params)
                value = torch.full(tuple(p["shape"]), float(p.get("fill", 0.0)))
                if p.get("trainable", True):
                    container.register_parameter(attr, nn.Parameter(value))
                else:
                    container.register_buffer(attr, value)
                self._steps.append((name, "attr", (container, attr), []))
                continue
            if node.kind == "opaque":
                if node.module is None:
                    raise BuildError(
                        f"{name}: this opaque node lost its module (graphs loaded from a file "
                        "keep no code); import the model again from its source"
                    )
                if isinstance(node.module, nn.Module) and node.module_path:
                    module = built.get(node.module_path)
                    if module is None:
                        module = copy.deepcopy(node.module)
                        self._attach(node.module_path, module)
                        built[node.module_path] = module
                    self._steps.append((name, "call", module, list(node.inputs)))
                else:
                    self._callables[name] = node.module
                    self._steps.append((name, "fn", name, list(node.inputs)))
                continue
            spec = ops.get(node.kind)
            try:
                params = spec.resolve(node.params)
                module = None
                if node.module_path:
                    module = built.get(node.module_path)
                if module is None:
                    module = spec.build(params)
            except Exception as e:
                raise BuildError(f"{name}: cannot build {node.kind}: {e}") from None
            if node.module_path:
                if node.module_path not in built:
                    self._attach(node.module_path, module)
                    built[node.module_path] = module
                if node.frozen:
                    module.requires_grad_(False)
            else:
                functions.add_module(name.replace(".", "_"), module)
            self._steps.append((name, "call", module, list(node.inputs)))

    def _container(self, path: str) -> tuple[nn.Module, str]:
        parent: nn.Module = self
        *parts, leaf = path.split(".")
        for part in parts:
            child = parent._modules.get(part)
            if child is None:
                child = nn.Module()
                parent.add_module(part, child)
            parent = child
        return parent, leaf

    def _attach(self, path: str, module: nn.Module) -> None:
        container, leaf = self._container(path)
        if leaf in container._modules:
            raise BuildError(f"two nodes want the module path {path!r}")
        container.add_module(leaf, module)

    def forward(self, *inputs: torch.Tensor) -> Any:
        """Run the graph; one output is returned as it is, several as a tuple.

        In training mode a graph with auxiliary outputs returns ``(outputs..., aux...)``, as
        GoogLeNet does; in eval mode its training-only nodes are skipped. The outputs of the
        nodes named in ``capture_names`` are kept in ``captured``.
        """
        env = self._run(inputs, self.capture_names, stop_early=False)
        if self.training and self.aux_output_names:
            return tuple(env[o] for o in (*self.output_names, *self.aux_output_names))
        if len(self.output_names) == 1:
            return env[self.output_names[0]]
        return tuple(env[o] for o in self.output_names)

    def run_until(self, *inputs: torch.Tensor, names: Iterable[str]) -> dict[str, Any]:
        """Run the graph only as far as needed for the outputs of ``names``.

        A probe of an early layer then costs a fraction of a forward pass.

        Args:
            inputs: The model inputs, as for ``forward``.
            names: Node names whose outputs are wanted (inputs included).

        Returns:
            ``{name: output}`` for every name.

        Raises:
            KeyError: A name is not a node of this model.
        """
        wanted = frozenset(names)
        known = set(self.input_names) | {step[0] for step in self._steps}
        unknown = sorted(wanted - known)
        if unknown:
            raise KeyError(f"{self.graph_name} has no node {unknown[0]!r}")
        env = self._run(inputs, wanted, stop_early=True)
        return {name: env[name] for name in wanted}

    def _run(
        self, inputs: tuple[torch.Tensor, ...], wanted: frozenset[str], stop_early: bool
    ) -> dict[str, Any]:
        if len(inputs) != len(self.input_names):
            raise TypeError(
                f"{self.graph_name} takes {len(self.input_names)} input(s), got {len(inputs)}"
            )
        env: dict[str, Any] = dict(zip(self.input_names, inputs, strict=True))
        left = set(wanted) - env.keys() if stop_early else set()
        if stop_early and not left:
            return env
        # A probe of a training-only node runs them all (its inputs may be training-only too).
        run_all = self.training or not self._training_only.isdisjoint(wanted)
        skip = frozenset() if run_all else self._training_only
        for name, how, target, ins in self._steps:
            if skip and name in skip:
                continue
            if how == "call":
                env[name] = target(*[env[i] for i in ins])
            elif how == "attr":
                env[name] = getattr(target[0], target[1])
            else:
                env[name] = self._callables[target](*[env[i] for i in ins])
            if stop_early and name in left:
                left.discard(name)
                if not left:
                    break
        if wanted and not stop_early:
            self.captured = {name: env[name] for name in wanted if name in env}
        return env


def build_module(graph: ArchGraph) -> GraphModel:
    """The graph as a trainable ``nn.Module`` with the original ``state_dict`` keys.

    Registry nodes are built fresh from their parameters (new weights); opaque module nodes
    use a copy of the kept module; opaque function nodes call the kept callable.

    Raises:
        BuildError: The graph is invalid or an opaque node has no module.
    """
    return GraphModel(graph)
