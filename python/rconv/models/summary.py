"""Keras 3's `model.summary()` table, drawn with the same box characters (no `rich` dependency).

    Model: "sequential"
    ┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
    ┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
    ┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
    │ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
    └─────────────────────────────────┴────────────────────────┴───────────────┘
     Total params: 93,322 (364.54 KB)
"""
from __future__ import annotations

import math


def readable_memory_size(num_bytes: float) -> str:
    for unit in ["B", "KB", "MB", "GB", "TB"]:
        if num_bytes / 1024 < 1:
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.2f} PB"


def _shape(layer) -> str:
    shape = getattr(layer, "_output_shape", None)
    if shape is None:
        return "?"
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _params(layer) -> str:
    return f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"


def _count(weights) -> int:
    return int(sum(math.prod(v.shape) for v in weights))


def summary_lines(model, line_length=None) -> list:
    # Keras uses min(88, terminal columns - 4); 76 is what it prints off a terminal.
    line_length = line_length or 76
    inner = line_length - 4  # four vertical borders
    widths = [int(inner * 0.46)]
    widths.append(int(inner * 0.8) - widths[0])
    widths.append(inner - sum(widths))

    def row(cells, left, sep, right, aligns=("<", "<", ">")):
        parts = [f" {c:{a}{w - 2}} " for c, w, a in zip(cells, widths, aligns)]
        return left + sep.join(parts) + right

    def rule(left, fill, sep, right):
        return left + sep.join(fill * w for w in widths) + right

    lines = [f'Model: "{model.name}"', rule("┏", "━", "┳", "┓"),
             row(["Layer (type)", "Output Shape", "Param #"], "┃", "┃", "┃"), rule("┡", "━", "╇", "┩")]
    layers = model.layers
    for i, layer in enumerate(layers):
        lines.append(row([f"{layer.name} ({type(layer).__name__})", _shape(layer), _params(layer)],
                         "│", "│", "│"))
        if i != len(layers) - 1:
            lines.append(rule("├", "─", "┼", "┤"))
    lines.append(rule("└", "─", "┴", "┘"))
    trainable, non_trainable = model.trainable_weights, model.non_trainable_weights
    t, nt = _count(trainable), _count(non_trainable)
    lines.append(f" Total params: {t + nt:,} ({readable_memory_size((t + nt) * 4)})")
    lines.append(f" Trainable params: {t:,} ({readable_memory_size(t * 4)})")
    lines.append(f" Non-trainable params: {nt:,} ({readable_memory_size(nt * 4)})")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        # Keras also counts `iterations`, and `learning_rate` unless a schedule or callable drives it
        o = _count(optimizer.variables) + 1 + int(getattr(optimizer, "has_learning_rate_variable", True))
        lines.append(f" Optimizer params: {o:,} ({readable_memory_size(o * 4)})")
    return lines


def print_summary(model, line_length=None, print_fn=None) -> None:
    text = "\n".join(summary_lines(model, line_length))
    (print_fn or print)(text)
