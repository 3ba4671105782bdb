"""h5py-level mutations of one HDF5 file, in place. Each returns a short description ("kind: detail"); the
kind names the failure class in reports."""
from __future__ import annotations

import json

import numpy as np

from . import seeds as seedmod
from .jsonmut import mutate_json_text

# Dtypes a weight dataset is rewritten to (numeric ones a loader may convert, and ones it must refuse).
_DTYPES = ["<f8", "<f2", ">f4", "<i4", "<i8", "|u1", "|b1", "<c8", "|S8", "O", "compound"]
_ATTR_VALUES = [0, -1, 2 ** 62, 1.5, np.nan, "", "x" * 100, "\xff", np.bytes_(b"\xff\xfe\x00"),
                np.arange(6).reshape(2, 3), np.array([b"a", b"b"]), np.array([], "f4"), np.float64(np.inf),
                "{\"class_name\": 1}", "[" * 2000 + "]" * 2000, "x" * (4 << 20)]


def _objects(h5):
    import h5py
    datasets, groups = [], []

    def visit(name, obj):
        (datasets if isinstance(obj, h5py.Dataset) else groups).append(name)
    h5.visititems(visit)
    return datasets, groups


def _pick(rng, names, default=None):
    return rng.choice(sorted(names)) if names else default


def _pick_numeric(h5, rng, scalars=False):
    """A random numeric (int/float) dataset's name, or None; scalars only when asked."""
    datasets, _ = _objects(h5)
    numeric = [d for d in datasets if h5[d].dtype.kind in "fiu" and (h5[d].shape is not None if scalars
                                                                      else h5[d].shape)]
    return _pick(rng, numeric)


def _recreate(h5, name, **kwargs):
    """Replace dataset `name` by `create_dataset(name, **kwargs)`, keeping its attributes."""
    old = h5[name]
    attrs = {k: old.attrs[k] for k in old.attrs}
    del h5[name]
    new = h5.create_dataset(name, **kwargs)
    for k, v in attrs.items():
        new.attrs[k] = v
    return new


def _small_data(rng, shape, dtype):
    data = np.random.default_rng(rng.randrange(1 << 32)).standard_normal(shape)
    if rng.random() < 0.3:
        data = data * rng.choice([np.inf, np.nan, 1e38, -1e38])
    with np.errstate(all="ignore"):
        return data.astype(dtype)


def _wrong_shape(rng, shape):
    choice = rng.randrange(6)
    if choice == 0 or not shape:
        return tuple(rng.randrange(1, 9) for _ in range(rng.randrange(0, 5)))
    if choice == 1:
        return tuple(reversed(shape)) if len(shape) > 1 else (shape[0] + 1,)
    if choice == 2:
        return shape + (1,)
    if choice == 3:
        return shape[:-1]
    if choice == 4:
        return tuple(0 if i == 0 else d for i, d in enumerate(shape))
    return tuple(d + rng.choice([-1, 1]) if d > 1 else d + 1 for d in shape)


def shape_change(h5, rng, ctx, seed):
    datasets, _ = _objects(h5)
    name = _pick(rng, datasets)
    if name is None:
        return "shape: no dataset"
    old = h5[name]
    shape = _wrong_shape(rng, tuple(old.shape or ()))
    _recreate(h5, name, data=_small_data(rng, shape, old.dtype if old.dtype.kind in "fiub" else "f4"))
    return f"shape: {name} {old.shape} -> {shape}"


def dtype_change(h5, rng, ctx, seed):
    import h5py
    datasets, _ = _objects(h5)
    name = _pick(rng, datasets)
    if name is None:
        return "dtype: no dataset"
    old = h5[name]
    shape, dt = tuple(old.shape or ()), rng.choice(_DTYPES)
    if dt == "O":
        data = np.array([str(i) for i in range(int(np.prod(shape)))], dtype=h5py.string_dtype()).reshape(shape)
        _recreate(h5, name, data=data)
    elif dt == "compound":
        comp = np.zeros(shape, dtype=[("a", "<f4"), ("b", "<i4")])
        _recreate(h5, name, data=comp)
    elif dt == "|S8":
        _recreate(h5, name, data=np.full(shape, b"1.5", dtype="S8"))
    else:
        _recreate(h5, name, data=_small_data(rng, shape, dt))
    return f"dtype: {name} {old.dtype} -> {dt}"


def values(h5, rng, ctx, seed):
    """Same shape and dtype, hostile values: inf, nan, huge, negative (e.g. an optimizer iteration of inf)."""
    name = _pick_numeric(h5, rng, scalars=True)
    if name is None:
        return "values: no numeric dataset"
    dset = h5[name]
    value = rng.choice([np.inf, -np.inf, np.nan, 1e38, -1.0, 2.0 ** 63, 0.0])
    with np.errstate(all="ignore"):
        dset[...] = np.asarray(np.full(dset.shape, value)).astype(dset.dtype)
    return f"values: {name} = {value}"


def filters(h5, rng, ctx, seed):
    """The same data rewritten chunked with HDF5 filters (gzip, lzf, shuffle, fletcher32, scale-offset)."""
    name = _pick_numeric(h5, rng)
    if name is None:
        return "filters: no numeric dataset"
    data = h5[name][()]
    kwargs = rng.choice([{"compression": "gzip"}, {"compression": "lzf"}, {"shuffle": True, "compression": "gzip"},
                         {"fletcher32": True}, {"scaleoffset": 2}])
    _recreate(h5, name, data=data, chunks=True, **kwargs)
    return f"filters: {name} {sorted(kwargs)}"


def external_storage(h5, rng, ctx, seed):
    """The dataset's bytes live in another file: a private sentinel file, the FIFO, /dev/zero, or nothing."""
    name = _pick_numeric(h5, rng)
    if name is None:
        return "external: no numeric dataset"
    old = h5[name]
    nbytes = old.size * old.dtype.itemsize
    target = rng.choice(["secret", "secret", "secret", "fifo", "devzero", "missing"])
    path = {"secret": lambda: seedmod.sentinel_file(ctx["workdir"], old.dtype, nbytes), "fifo": lambda: ctx["fifo"],
            "devzero": lambda: "/dev/zero", "missing": lambda: ctx["workdir"] + "/private/no_such_file"}[target]()
    _recreate(h5, name, shape=old.shape, dtype=old.dtype, external=[(path, 0, max(nbytes, 1))])
    return f"external_{target}: {name}"


def external_link(h5, rng, ctx, seed):
    import h5py
    datasets, groups = _objects(h5)
    name = _pick(rng, datasets + groups)
    if name is None:
        return "extlink: empty file"
    twin = ctx["twins"][seed]
    target = rng.choice(["twin", "twin", "root", "missing"])
    file, inner = {"twin": (twin, "/" + name), "root": (twin, "/"), "missing": ("/nonexistent.h5", "/x")}[target]
    del h5[name]
    h5[name] = h5py.ExternalLink(file, inner)
    return f"extlink_{target}: {name}"


def virtual_dataset(h5, rng, ctx, seed):
    import h5py
    name = _pick_numeric(h5, rng)
    if name is None:
        return "vds: no numeric dataset"
    old = h5[name]
    shape, dtype = old.shape, old.dtype
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
    layout[...] = h5py.VirtualSource(ctx["twins"][seed], "/" + name, shape=shape)
    del h5[name]
    h5.create_virtual_dataset(name, layout, fillvalue=0)
    return f"vds: {name}"


def soft_link(h5, rng, ctx, seed):
    import h5py
    datasets, groups = _objects(h5)
    name = _pick(rng, datasets + groups)
    if name is None:
        return "softlink: empty file"
    kind = rng.choice(["self", "parent", "root", "dangling", "other", "pair"])
    parent = "/" + name.rsplit("/", 1)[0] if "/" in name else "/"
    other = _pick(rng, [d for d in datasets if d != name], "/nope")
    target = {"self": "/" + name, "parent": parent, "root": "/", "dangling": "/no/such/object",
              "other": "/" + other, "pair": "/" + name + "_peer"}[kind]
    del h5[name]
    h5[name] = h5py.SoftLink(target)
    if kind == "pair":
        h5[name + "_peer"] = h5py.SoftLink("/" + name)
    return f"softlink_{kind}: {name} -> {target}"


def hard_link(h5, rng, ctx, seed):
    datasets, groups = _objects(h5)
    name = _pick(rng, datasets)
    if name is None or len(datasets) < 2:
        return "hardlink: too few datasets"
    other = _pick(rng, [d for d in datasets if d != name])
    del h5[name]
    h5[name] = h5[other]
    return f"hardlink: {name} = {other}"


def huge_dataset(h5, rng, ctx, seed):
    """A huge chunked (never written: a few KB on disk) or huge-declared dataset in place of a weight."""
    datasets, _ = _objects(h5)
    name = _pick(rng, datasets)
    if name is None:
        return "huge: no dataset"
    old = h5[name]
    rank = max(1, len(old.shape or ()))
    side = rng.choice([25000, 100000, 2 ** 20]) if rank <= 2 else rng.choice([3000, 20000])
    shape = tuple([side] * min(rank, 2) + [rng.randrange(1, 4)] * (rank - 2))
    kwargs = {"compression": "gzip"} if rng.random() < 0.5 else {}
    _recreate(h5, name, shape=shape, dtype="f4", chunks=tuple(min(64, d) for d in shape), fillvalue=0.25,
              **kwargs)
    return f"huge: {name} {shape}"


def attribute(h5, rng, ctx, seed):
    """Corrupt, delete or JSON-mutate an attribute (model_config, training_config, layer_names, ...)."""
    datasets, groups = _objects(h5)
    owners = [o for o in ["/"] + groups + datasets if len(h5[o].attrs)]
    owner = _pick(rng, owners)
    if owner is None:
        return "attr: no attributes"
    attrs = h5[owner].attrs
    key = rng.choice(sorted(attrs.keys()))
    value = attrs[key]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    action = rng.random()
    if isinstance(value, str) and value[:1] in "{[" and action < 0.6:
        try:
            json.loads(value)
            text, desc = mutate_json_text(value, rng)
            attrs[key] = text
            return f"attr_json: {owner}@{key} {desc}"
        except ValueError:
            pass
    if action < 0.15:
        del attrs[key]
        return f"attr_delete: {owner}@{key}"
    if action < 0.35 and isinstance(value, np.ndarray) and value.size:
        names = list(value)
        op = rng.randrange(4)
        if op == 0:
            names = names + [b"no_such_layer"]
        elif op == 1:
            names = names[:-1]
        elif op == 2:
            names = names[::-1]
        else:
            names = names + names
        attrs[key] = np.array([n.encode() if isinstance(n, str) else n for n in names])
        return f"attr_list: {owner}@{key} op{op}"
    new = _ATTR_VALUES[rng.randrange(len(_ATTR_VALUES))]
    attrs[key] = new
    return f"attr_value: {owner}@{key} = {type(new).__name__}"


def structure(h5, rng, ctx, seed):
    """Delete, move or add objects."""
    datasets, groups = _objects(h5)
    names = datasets + groups
    op = rng.choice(["delete", "move", "add_dataset", "add_group", "empty", "deep_groups"])
    name = _pick(rng, names)
    if name is None:
        return "struct: empty file"
    if op == "delete":
        del h5[name]
    elif op == "move":
        other = (name.rsplit("/", 1)[0] + "/" if "/" in name else "") + "moved_" + str(rng.randrange(9))
        if other not in h5:
            h5.move(name, other)
    elif op == "add_dataset":
        base = name if name in groups else (name.rsplit("/", 1)[0] if "/" in name else "")
        h5.create_dataset((base + "/" if base else "") + str(rng.randrange(99)) + "x", data=np.ones(3, "f4"))
    elif op == "add_group":
        h5.create_group(name + "_extra" if name in datasets else name + "/extra_group")
    elif op == "deep_groups":
        base = name if name in groups else (name.rsplit("/", 1)[0] if "/" in name else "")
        h5.create_group((base + "/" if base else "") + "/".join(["g"] * rng.choice([50, 400])))
    else:
        import h5py
        if name in datasets:
            _recreate(h5, name, data=h5py.Empty("f4"))
    return f"struct_{op}: {name}"


MUTATIONS = [(shape_change, 3), (dtype_change, 3), (values, 2), (filters, 1), (external_storage, 3), (external_link, 2),
             (virtual_dataset, 1), (soft_link, 2), (hard_link, 1), (huge_dataset, 2), (attribute, 4),
             (structure, 2)]


def mutate_file(path, rng, ctx, seed) -> str:
    import h5py
    funcs, weights = zip(*MUTATIONS)
    func = rng.choices(funcs, weights)[0]
    with h5py.File(path, "r+") as h5:
        return func(h5, rng, ctx, seed)
