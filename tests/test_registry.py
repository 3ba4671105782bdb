"""rconv.registry: one name table per kind; every kind's get/serialize goes through it."""
import inspect
import types

import numpy as np
import pytest

import rconv
from rconv import activations, initializers, layers, losses, metrics, optimizers, registry
from rconv.saving import serialization

OWNED_KINDS = ("layers", "losses", "optimizers", "metrics", "activations", "initializers")


# --- the shared registry -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(registry.KINDS))
def test_every_name_round_trips_to_its_canonical_name(kind):
    pairs = registry.items(kind)
    if kind in OWNED_KINDS:
        assert pairs, f"nothing registered as {kind}"
    canonical = {id(obj): name for name, obj in pairs}
    assert len(canonical) == len(pairs)  # one canonical name per object
    for name, obj in pairs:
        assert registry.get(kind, name) is obj
        assert registry.name_of(kind, obj) == name
    for name in registry.names(kind):  # aliases resolve to an object whose canonical name differs
        obj = registry.get(kind, name)
        assert registry.name_of(kind, obj) == canonical[id(obj)]


@pytest.mark.parametrize("kind", OWNED_KINDS)
def test_unknown_names_list_the_known_ones(kind):
    with pytest.raises(ValueError, match=r"Unknown .*: 'no_such_thing'\. Known: \[") as info:
        registry.get(kind, "no_such_thing")
    some_name = registry.items(kind)[0][0]
    assert repr(some_name.lower() if kind in registry.CASE_INSENSITIVE else some_name) in str(info.value)
    assert registry.find(kind, "no_such_thing") is None
    assert registry.find(kind, None, "fallback") == "fallback"


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match=r"Unknown registry kind 'layer'.*'layers'"):
        registry.get("layer", "Dense")
    with pytest.raises(ValueError, match="Unknown registry kind"):
        registry.register("widgets")


def test_duplicate_name_for_another_object_raises_and_changes_nothing():
    class Dense(layers.Layer):
        pass

    with pytest.raises(ValueError, match=r"layer 'Dense'.*already belongs to .*rconv\.layers\.dense\.Dense"):
        registry.register("layers", "MyDense", "Dense")(Dense)
    assert registry.find("layers", "MyDense") is None  # the whole registration was refused
    assert registry.get("layers", "Dense") is layers.Dense
    with pytest.raises(ValueError, match="already belongs"):  # case-insensitive kinds compare folded names
        registry.register("optimizers", "ADAM")(type("ADAM", (optimizers.Optimizer,), {}))
    registry.register("layers", "Dense")(layers.Dense)  # the same object again is a no-op
    assert registry.name_of("layers", layers.Dense) == "Dense"


def test_fresh_registry_register_forms_and_views():
    reg = registry.Registry()

    @reg.register("callbacks")
    def on_end():
        pass

    class Thing:
        pass

    assert reg.register("models", "Thing", "thing")(Thing) is Thing  # function form returns the object
    reg.register("models", "alias_of_thing")(Thing)  # later names are aliases; the canonical name stays
    assert reg.get("callbacks", "on_end") is on_end
    assert reg.name_of("models", Thing) == "Thing"
    assert reg.names("models") == ["Thing", "alias_of_thing", "thing"]
    assert reg.items("models") == [("Thing", Thing)]
    view = reg.mapping("models")
    assert isinstance(view, types.MappingProxyType) and view["thing"] is Thing
    with pytest.raises(TypeError):
        view["other"] = Thing
    reg.register("models", "Later")(object)
    assert "Later" in view  # the view is live
    assert registry.find("models", "Thing") is None  # separate from the shared registry
    with pytest.raises(ValueError, match="not a registered model"):
        reg.name_of("models", on_end)
    assert reg.name_of("models", on_end, None) is None
    with pytest.raises(TypeError, match="non-empty strings"):
        reg.register("models", "")
    with pytest.raises(TypeError, match="has no __name__"):
        reg.register("models")(3)


def test_registry_imports_nothing_from_rconv():
    source = inspect.getsource(registry)
    assert "from ." not in source and "import rconv" not in source


# --- layers ------------------------------------------------------------------------------------------
def _public_subclasses(module, base):
    return {obj for name, obj in vars(module).items()
            if not name.startswith("_") and isinstance(obj, type) and issubclass(obj, base) and obj is not base}


@pytest.mark.parametrize("module, kind, base, exempt", [
    (layers, "layers", layers.Layer, set()),
    (losses, "losses", losses.Loss, set()),
    (optimizers, "optimizers", optimizers.Optimizer, set()),
    (metrics, "metrics", metrics.Metric, {metrics.MeanMetricWrapper}),  # needs a function: not by name
    (initializers, "initializers", initializers.Initializer, set()),
])
def test_every_public_class_is_registered_under_its_class_name(module, kind, base, exempt):
    classes = _public_subclasses(module, base) - exempt
    assert classes
    for cls in classes:
        assert registry.name_of(kind, cls) == cls.__name__
    assert registry.name_of(kind, base, None) is None


@pytest.mark.parametrize("name", ["Layer", "_Pooling2D", "_GlobalPooling2D", "_Merge", "_RandomAugmentation",
                                  "Input", "registry", "np", "get", "dense"])
def test_layers_get_refuses_bases_functions_and_module_globals(name):
    with pytest.raises(ValueError, match=rf"Unknown layer: '{name}'\. Known: \[.*'Conv2D'"):
        layers.get(name)


@pytest.mark.parametrize("alias, cls", [
    ("Convolution2D", layers.Conv2D), ("MaxPool2D", layers.MaxPooling2D), ("AvgPool2D", layers.AveragePooling2D),
    ("GlobalAvgPool2D", layers.GlobalAveragePooling2D), ("GlobalMaxPool2D", layers.GlobalMaxPooling2D),
])
def test_layer_aliases_resolve_load_and_save_under_the_canonical_name(alias, cls):
    assert layers.get(alias) is cls is getattr(layers, alias)
    assert registry.name_of("layers", cls) == cls.__name__ != alias
    config = {"name": "aliased", **({"filters": 2, "kernel_size": 3} if cls is layers.Conv2D else {})}
    layer = serialization.layer_from_config({"module": "keras.layers", "class_name": alias, "config": config,
                                             "registered_name": None})
    assert type(layer) is cls and layer.name == "aliased"
    assert serialization.layer_to_config(layer)["class_name"] == cls.__name__


def test_saving_refuses_an_unregistered_subclass_even_with_a_known_class_name():
    Dense = type("Dense", (layers.Dense,), {})  # a user subclass that merely shares the name
    with pytest.raises(serialization.ConfigError, match="unsupported class 'Dense'"):
        serialization.layer_to_config(Dense(2, name="impostor"))


# --- each kind's public get / serialize / deserialize -------------------------------------------------
@pytest.mark.parametrize("name", registry.names("losses"))
def test_losses_by_name_and_serialized_round_trip(name):
    loss = losses.get(name)
    cls = registry.get("losses", name)
    assert type(loss) is cls
    assert loss.name == (cls().name if name == cls.__name__ else name)  # 'mse' keeps its spelling
    entry = losses.serialize(loss)
    assert entry["class_name"] == registry.name_of("losses", cls) == cls.__name__
    again = losses.get(entry)
    assert type(again) is cls and again.get_config() == loss.get_config()


def test_loss_functions_and_classes_map_to_their_loss():
    assert type(losses.get(losses.mse)) is losses.MeanSquaredError
    assert type(losses.get(losses.binary_crossentropy)) is losses.BinaryCrossentropy
    assert type(losses.get(losses.CategoricalCrossentropy)) is losses.CategoricalCrossentropy
    with pytest.raises(ValueError, match=r"Unknown loss: 'circle'\. Known: \[.*'mse'"):
        losses.get("circle")
    with pytest.raises(ValueError, match="Unknown loss: 'Circle'"):
        losses.get({"class_name": "Circle", "config": {}})
    with pytest.raises(TypeError, match="Could not interpret loss"):
        losses.get(lambda y, p: 0.0)


@pytest.mark.parametrize("name", ["sgd", "SGD", "Sgd", "rmsprop", "RMSprop", "adam", "Adam", "ADAM"])
def test_optimizer_names_are_case_insensitive(name):
    opt = optimizers.get(name)
    assert type(opt) is registry.get("optimizers", name)
    entry = optimizers.serialize(opt)
    assert entry["class_name"] == type(opt).__name__ == registry.name_of("optimizers", type(opt))
    assert optimizers.deserialize(entry).get_config() == opt.get_config()
    assert optimizers.get(entry).get_config() == opt.get_config()


def test_unknown_optimizer_in_a_config():
    with pytest.raises(ValueError, match=r"Unknown optimizer: 'Ftrl'\. Known: \['adadelta', 'adagrad', 'adam', "):
        optimizers.get({"class_name": "Ftrl", "config": {}})
    with pytest.raises(serialization.ConfigError, match=r"'Ftrl'.*\['Adadelta', 'Adagrad', 'Adam', "):
        serialization.optimizer_from_config({"class_name": "Ftrl", "config": {}})
    opt = serialization.optimizer_from_config({"class_name": "Custom>Adam", "config": {"learning_rate": 0.5}})
    assert type(opt) is optimizers.Adam and opt.learning_rate == 0.5


@pytest.mark.parametrize("name", registry.names("metrics"))
def test_metrics_by_name(name):
    shapes = ((4,), (4, 3))
    if registry.get("metrics", name).__name__ in ("IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU", "PrecisionAtRecall",
                                                  "RecallAtPrecision", "SensitivityAtSpecificity",
                                                  "SpecificityAtSensitivity"):
        with pytest.raises(TypeError, match="needs arguments"):  # num_classes has no default, as in Keras
            metrics.get(name, *shapes)
        return
    metric = metrics.get(name, *shapes)
    if name == "Accuracy":  # 'accuracy' in any case is Keras's shape-dependent accuracy
        assert type(metric) is metrics.SparseCategoricalAccuracy
    else:
        assert type(metric) is registry.get("metrics", name)
    assert metric.name == name


def test_metric_configs_load_through_the_registry():
    loaded = serialization.metrics_from_config([
        {"class_name": "BinaryAccuracy", "config": {"name": "bin"}},
        {"class_name": "MeanMetricWrapper", "config": {"name": "categorical_accuracy", "fn": "x"}},
        "acc"])
    assert type(loaded[0]) is metrics.BinaryAccuracy and loaded[0].name == "bin"
    assert loaded[1:] == ["categorical_accuracy", "acc"]
    with pytest.raises(serialization.ConfigError, match="Unsupported metric 'R2Score'"):
        serialization.metrics_from_config([{"class_name": "R2Score", "config": {}}])
    with pytest.raises(ValueError, match=r"Unknown metric: 'f1'\. Known: \["):
        metrics.get("f1")


@pytest.mark.parametrize("name", registry.names("activations"))
def test_activations_by_name(name):
    fn = activations.get(name)
    assert fn is getattr(activations, name)
    assert activations.serialize(fn) == activations.name_of(fn) == name
    assert activations.get({"class_name": name, "config": name}) is fn
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    y = fn(x)
    assert activations.backward(fn, y, np.ones_like(y)).shape == x.shape


def test_custom_activation_callables():
    def swish(x):
        return x

    assert activations.get(swish) is swish and activations.get(None) is activations.linear
    assert activations.name_of(swish) is None and activations.serialize(swish) == "swish"
    with pytest.raises(TypeError, match=r"no backward in rconv.*'linear'.*'relu'"):
        activations.backward(swish, np.ones(2, np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"Unknown activation function: 'celu'\. Known: \[.*'relu'"):
        activations.get("celu")


@pytest.mark.parametrize("name", registry.names("initializers"))
def test_initializers_by_name_and_serialized_round_trip(name):
    init = initializers.get(name)
    cls = registry.get("initializers", name)
    assert type(init) is cls
    entry = initializers.serialize(init)
    assert entry["class_name"] == registry.name_of("initializers", cls) == cls.__name__
    again = initializers.deserialize(entry)
    assert type(again) is cls and again.get_config() == init.get_config()
    assert initializers.get(entry).get_config() == init.get_config()
    assert initializers.get(name)((2, 3)).shape == (2, 3)


def test_initializer_aliases_and_unknown_names():
    assert type(initializers.get("zero")) is initializers.Zeros
    assert type(initializers.get("one")) is initializers.Ones
    assert initializers.glorot_uniform is registry.get("initializers", "glorot_uniform")
    with pytest.raises(ValueError, match=r"Unknown initializer: 'glorot_unifrom'\. Known: \[.*'glorot_uniform'"):
        initializers.get("glorot_unifrom")
    with pytest.raises(ValueError, match="Unknown initializer: 'Orthogonal'"):
        initializers.deserialize({"class_name": "Orthogonal", "config": {}})


def test_compile_config_round_trip_uses_registered_names():
    model = rconv.Sequential([rconv.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="RMSprop", loss="mse", metrics=["acc"])
    config = serialization.compile_config(model)
    assert config["loss"] == "mse" and config["optimizer"]["class_name"] == "RMSprop"
    clone = rconv.Sequential([rconv.Input((3,)), layers.Dense(2, activation="softmax")])
    serialization.compile_from_config(clone, config)
    assert type(clone.loss) is losses.MeanSquaredError and clone.loss.name == "mse"
    assert type(clone.optimizer) is optimizers.RMSprop
