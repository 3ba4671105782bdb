"""`rconv.utils.model_to_dot` / `plot_model` (issue 13, item 7): the graph drawn is the model's real graph
(nodes, edges, shapes). The graph itself is always tested (through `model_to_dot` when pydot is installed,
else through the pydot-free `_graph` it is built from); the rendered PNG/SVG only when Graphviz is installed.
Without pydot or Graphviz: an ImportError naming the install commands."""
from __future__ import annotations

import sys

import pytest

import rconv
from rconv import layers
from rconv.utils import model_visualization as mv

try:
    import pydot
except ImportError:  # an optional dependency: the graph is then checked through `_graph`
    pydot = None
needs_pydot = pytest.mark.skipif(pydot is None, reason="pydot is not installed (pip install pydot)")
needs_graphviz = pytest.mark.skipif(not mv.check_graphviz(), reason="Graphviz is not installed (apt install graphviz)")


def _branchy():
    """Input -> conv -> (shared dense on two branches) -> add -> x * 2 ; a second output from `flat`."""
    inp = rconv.Input((6, 6, 3), name="img")
    h = layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    flat = layers.Flatten(name="flat")(h)
    shared = layers.Dense(5, name="shared")
    a = shared(flat)
    b = shared(layers.Dense(64, name="widen")(flat))
    s = layers.Add(name="add")([a, b])
    out = layers.Dense(2, activation="softmax", name="probs")(s * 2.0)
    return rconv.Model(inp, [out, flat])


def _drawn(model, **options):
    """({node name: label}, {(source name, destination name)}) of `model_to_dot(model, **options)` (the same as
    `_graph`'s, checked), or of `_graph` without pydot."""
    graph_options = {k: v for k, v in options.items() if k.startswith("show_")}
    nodes, edges = mv._graph(model, **{"show_layer_names": True, **graph_options})
    nodes, edges = dict(nodes), set(edges)
    if pydot is not None:
        dot = mv.model_to_dot(model, **options)
        dot_nodes = {n.get_name(): n.get("label") for n in dot.get_nodes() if n.get_name() not in ("node", "graph")}
        assert dot_nodes == nodes and {(e.get_source(), e.get_destination()) for e in dot.get_edges()} == edges
    return nodes, edges


def _named_edges(model, edges):
    names = {}
    for lay in model._plan.layers:
        names[str(id(lay))] = lay.name
    return {(names[a], names[b]) for a, b in edges}


def _label_of(nodes, layer):
    return nodes[str(id(layer))]


def test_functional_graph_nodes_edges_and_shapes():
    model = _branchy()
    nodes, edges = _drawn(model, show_shapes=True)
    ops_layer = [lay for lay in model._plan.layers if getattr(lay, "is_tensor_op", False)][0]
    assert set(nodes) == {str(id(lay)) for lay in model._plan.layers}
    assert len(nodes) == 8  # img, conv, flat, widen, shared (once, though called twice), add, x*2, probs
    assert _named_edges(model, edges) == {("img", "conv"), ("conv", "flat"), ("flat", "shared"), ("flat", "widen"),
                                  ("widen", "shared"), ("shared", "add"), ("add", ops_layer.name),
                                  (ops_layer.name, "probs")}
    conv = _label_of(nodes, model.get_layer("conv"))
    assert "<b>conv</b> (Conv2D)" in conv
    assert "Input shape: <b>(None, 6, 6, 3)</b>" in conv and "Output shape: <b>(None, 4, 4, 4)</b>" in conv
    add = _label_of(nodes, model.get_layer("add"))
    assert "Input shape: <b>[(None, 5), (None, 5)]</b>" in add
    img = _label_of(nodes, model.get_layer("img"))
    assert "Input shape" not in img and "Output shape: <b>(None, 6, 6, 3)</b>" in img


@needs_pydot
def test_dot_graph_attributes():
    dot = mv.model_to_dot(_branchy())
    assert dot.get("rankdir") == "TB" and dot.get("dpi") == 200 and dot.get("splines") == "ortho"
    assert mv.model_to_dot(_branchy(), rankdir="LR", dpi=96).get("rankdir") == "LR"
    model = _branchy()
    cluster = mv.model_to_dot(model, subgraph=True)
    assert isinstance(cluster, pydot.Cluster) and cluster.get("label") == model.name


def test_sequential_graph_is_a_chain_without_the_input_layer():
    model = rconv.Sequential([rconv.Input((7,)), layers.Dense(3, name="d1"), layers.Dropout(0.5, name="drop"),
                              layers.Dense(1, name="d2")])
    nodes, edges = _drawn(model, show_shapes=True, rankdir="LR")
    assert len(nodes) == 3
    assert _named_edges(model, edges) == {("d1", "drop"), ("drop", "d2")}
    assert "Output shape: <b>(None, 1)</b>" in _label_of(nodes, model.get_layer("d2"))


def test_nested_model_is_one_box():
    inner = rconv.Sequential([rconv.Input((4,)), layers.Dense(3, name="i1"), layers.Dense(2, name="i2")],
                             name="inner")
    inp = rconv.Input((4,), name="x")
    out = layers.Dense(1, name="head")(inner(inp))
    model = rconv.Model(inp, out)
    nodes, edges = _drawn(model, show_shapes=True)
    assert _named_edges(model, edges) == {("x", "inner"), ("inner", "head")}
    assert "<b>inner</b> (Sequential)" in _label_of(nodes, inner)
    assert "Output shape: <b>(None, 2)</b>" in _label_of(nodes, inner)
    if pydot is not None:
        with pytest.warns(UserWarning, match="one box"):
            mv.model_to_dot(model, expand_nested=True)


def test_label_options():
    model = _branchy()
    conv = model.get_layer("conv")
    plain = _label_of(_drawn(model, show_layer_names=False)[0], conv)
    assert "<b>Conv2D</b>" in plain and "conv</b>" not in plain and "shape" not in plain
    rich = _label_of(_drawn(model, show_layer_activations=True, show_dtype=True, show_trainable=True)[0], conv)
    assert "Activation: <b>relu</b>" in rich and "Output dtype: <b>float32</b>" in rich and "Trainable" in rich
    conv.trainable = False
    assert "Non-trainable" in _label_of(_drawn(model, show_trainable=True)[0], conv)


@needs_pydot
def test_bad_arguments_and_unbuilt_models():
    model = _branchy()
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        mv.model_to_dot(model, colour="red")
    with pytest.raises(ValueError, match="layer_range"):
        mv.model_to_dot(model, layer_range=["a", "b"])
    with pytest.raises(ValueError, match="rankdir"):
        mv.model_to_dot(model, rankdir="sideways")
    with pytest.raises(ValueError, match="not yet been built"):
        rconv.utils.plot_model(rconv.Sequential([layers.Dense(2)]))


def test_missing_pydot_is_an_import_error_naming_pip_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pydot", None)  # `import pydot` now raises ImportError
    assert not mv.check_pydot()
    for call in (lambda: rconv.utils.model_to_dot(_branchy()),
                 lambda: rconv.utils.plot_model(_branchy(), to_file=str(tmp_path / "m.png"))):
        with pytest.raises(ImportError, match=r"pip install pydot"):
            call()


@needs_pydot
def test_missing_graphviz_is_an_import_error_naming_apt_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` program to be found
    assert not mv.check_graphviz()
    with pytest.raises(ImportError, match=r"apt install graphviz"):
        rconv.utils.plot_model(_branchy(), to_file=str(tmp_path / "m.png"))
    assert not (tmp_path / "m.png").exists()
    mv.model_to_dot(_branchy())  # the DOT graph itself needs no Graphviz


@needs_graphviz
def test_plot_model_writes_png_and_svg(tmp_path):
    model = _branchy()
    png = tmp_path / "model.png"
    rconv.utils.plot_model(model, to_file=png, show_shapes=True, show_layer_names=True, dpi=50)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 300  # a tall graph of 8 boxes
    svg = tmp_path / "model.svg"
    rconv.utils.plot_model(model, to_file=str(svg), show_layer_names=True)
    text = svg.read_text()
    assert "<svg" in text and all(name in text for name in ("conv", "shared", "probs", "widen"))
    bare = tmp_path / "model"
    rconv.utils.plot_model(model, to_file=bare)  # no extension: PNG
    assert bare.read_bytes()[:4] == b"\x89PNG"
