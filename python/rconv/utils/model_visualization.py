"""`plot_model` and `model_to_dot`, as ``keras.utils`` has them (keras/src/utils/model_visualization.py).

The graph drawn is the model's own plan (`graph/plan.py`): one node per layer (a functional model's
`InputLayer`s included; a `Sequential` model's omitted, as Keras does), one edge per layer call input, so
shared layers and branches appear as they are wired. A nested model is one box. Labels are the HTML tables
Keras draws (layer name and class, optionally input/output shapes, dtype, activation, trainable).

pydot and the Graphviz programs are optional dependencies: without them these functions raise an ImportError
that names the install commands.
"""
from __future__ import annotations

import html
import importlib
import os
import warnings

__all__ = ["plot_model", "model_to_dot"]

PYDOT_HINT = "install pydot (`pip install pydot`)"
GRAPHVIZ_HINT = ("install Graphviz (Debian/Ubuntu: `apt install graphviz`; macOS: `brew install graphviz`; "
                 "others: https://graphviz.org/download/) so that its `dot` program is on the PATH")


def _pydot():
    """The pydot module, or an ImportError naming the install command."""
    try:
        return importlib.import_module("pydot")
    except ImportError as e:
        raise ImportError(f"You must {PYDOT_HINT} for `plot_model` / `model_to_dot` to work.") from e


def check_pydot() -> bool:
    """True if pydot can be imported."""
    try:
        _pydot()
        return True
    except ImportError:
        return False


def check_graphviz() -> bool:
    """True if pydot is available and can run Graphviz's `dot` (it renders an empty graph)."""
    if not check_pydot():
        return False
    pydot = _pydot()
    try:
        pydot.Dot.create(pydot.Dot())
        return True
    except (OSError, AssertionError, getattr(pydot, "PydotException", OSError)):
        return False


def _format_shape(shapes) -> str:
    if not shapes:
        return "?"
    return str(shapes[0]) if len(shapes) == 1 else str(list(shapes))


def _calls(model):
    """(nodes: layers in the plan's order, edges: (source layer, destination layer) pairs in call order,
    shapes: id(layer) -> (input shapes, output shapes) of its first call)."""
    plan = model._plan
    producer = [None if step is None else step.layer for step in plan.steps]
    for slot, t in enumerate(plan.tensors):
        if producer[slot] is None:
            producer[slot] = t._keras_history[0]  # the InputLayer of a model input
    sequential = type(model).__name__ == "Sequential"
    drawn = [lay for lay in plan.layers if not (sequential and type(lay).__name__ == "InputLayer")]
    ids = {id(lay) for lay in drawn}
    edges, shapes = [], {}
    for slot, step in enumerate(plan.steps):
        layer = producer[slot]
        parents = [] if step is None else step.parents
        shapes.setdefault(id(layer), ([plan.tensors[p].shape for p in parents], [plan.tensors[slot].shape]))
        for p in parents:
            source = producer[p]
            if id(source) in ids and id(layer) in ids and (source, layer) not in edges:
                edges.append((source, layer))
    return drawn, edges, shapes


def _graph(model, **label_options):
    """What `model_to_dot` draws, without pydot: ([(node name, HTML label)], [(source name, destination name)]);
    a node's name is ``str(id(layer))``, like Keras's."""
    layers, edges, shapes = _calls(model)
    nodes = [(str(id(layer)), _label(layer, shapes, **label_options)) for layer in layers]
    return nodes, [(str(id(a)), str(id(b))) for a, b in edges]


def _activation_name(layer) -> str:
    act = layer.activation
    return getattr(act, "name", None) or getattr(act, "__name__", None) or str(act)


def _label(layer, shapes, show_shapes=False, show_dtype=False, show_layer_names=True, show_layer_activations=False,
           show_trainable=False):
    """Keras's HTML-table label of one layer."""
    esc = html.escape
    class_name = type(layer).__name__
    head = f"<b>{esc(layer.name)}</b> ({esc(class_name)})" if show_layer_names else f"<b>{esc(class_name)}</b>"
    cols = []
    in_shapes, out_shapes = shapes.get(id(layer), ([], []))
    if show_shapes:
        if class_name != "InputLayer":
            cols.append(f'<td bgcolor="white"><font point-size="14">Input shape: '
                        f"<b>{esc(_format_shape(in_shapes))}</b></font></td>")
        cols.append(f'<td bgcolor="white"><font point-size="14">Output shape: '
                    f"<b>{esc(_format_shape(out_shapes))}</b></font></td>")
    if show_dtype:
        cols.append('<td bgcolor="white"><font point-size="14">Output dtype: <b>float32</b></font></td>')
    if show_trainable and layer.weights:
        color, text = ("forestgreen", "Trainable") if layer.trainable else ("firebrick", "Non-trainable")
        cols.append(f'<td bgcolor="{color}"><font point-size="14" color="white"><b>{text}</b></font></td>')
    span = max(1, len(cols))
    table = ('<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">'
             f'<tr><td colspan="{span}" bgcolor="black"><font point-size="16" color="white">{head}</font></td></tr>')
    if show_layer_activations and getattr(layer, "activation", None) is not None:
        table += (f'<tr><td bgcolor="white" colspan="{span}"><font point-size="14">Activation: '
                  f"<b>{esc(_activation_name(layer))}</b></font></td></tr>")
    if cols:
        table += f"<tr>{''.join(cols)}</tr>"
    return table + "</table>>"


def _check_built(model, what: str) -> None:
    if getattr(model, "_plan", None) is None:
        raise ValueError(f"{what}: model '{model.name}' has not yet been built. Build the model first by calling "
                         "`build()` or by calling the model on a batch of data (or give it an `Input`).")


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=200, subgraph=False, show_layer_activations=False, show_trainable=False,
                 splines="ortho", **kwargs):
    """The model's graph as a `pydot.Dot` (a `pydot.Cluster` when `subgraph`): one node per layer, named by
    ``str(id(layer))`` like Keras, with edges along the layer calls. Needs pydot (not Graphviz)."""
    _check_built(model, "model_to_dot")
    pydot = _pydot()
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"model_to_dot: rankdir must be one of 'TB', 'LR', 'BT', 'RL', got {rankdir!r}")
    if expand_nested:
        warnings.warn("rconv's model_to_dot draws a nested model as one box; expand_nested=True is ignored",
                      stacklevel=2)
    if subgraph:
        dot = pydot.Cluster(style="dashed", graph_name=model.name)
        dot.set("label", model.name)
        dot.set("labeljust", "l")
    else:
        dot = pydot.Dot()
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set("splines", splines)
        dot.set_node_defaults(shape="record")
    nodes, edges = _graph(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                          show_layer_activations=show_layer_activations, show_trainable=show_trainable)
    for name, label in nodes:
        node = pydot.Node(name, label=label)
        node.set("fontname", "Helvetica")
        node.set("border", "0")
        node.set("margin", "0")
        dot.add_node(node)
    for source, destination in edges:
        edge = pydot.Edge(source, destination)
        edge.set("penwidth", "2")
        dot.add_edge(edge)
    return dot


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=False,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False,
               splines="ortho", **kwargs):
    """Draw the model's graph into `to_file` with Graphviz (the format from its extension, PNG without one), as
    `keras.utils.plot_model`. Returns an `IPython.display.Image` of it when IPython is installed (not for PDF),
    else None. Needs pydot and Graphviz; without them, an ImportError naming the install commands."""
    _check_built(model, "plot_model")
    _pydot()
    if not check_graphviz():
        raise ImportError(f"You must {PYDOT_HINT} and {GRAPHVIZ_HINT} for `plot_model` to work.")
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                       rankdir=rankdir, expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations, show_trainable=show_trainable,
                       splines=splines, **kwargs)
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:] or "png"
    dot.write(to_file, format=extension)
    if extension != "pdf":
        try:
            from IPython import display
            return display.Image(filename=to_file)
        except ImportError:
            pass
    return None
