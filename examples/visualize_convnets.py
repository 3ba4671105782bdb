"""What a convnet learned — Deep Learning with Python (2nd ed.) 9.4, written as a Keras 3 user would, with
`keras` replaced by `rconv` and `tf.GradientTape` by `rconv.GradientTape`:

* activations: the intermediate activations of every Conv2D/MaxPooling2D layer for one image, as channel grids;
* filters: the input pattern each filter responds to most, by gradient ascent on the input;
* saliency: |d class score / d input|, the pixels the class score is most sensitive to;
* gradcam: the class activation heatmap of the last convolution (Grad-CAM), superimposed on the image.

usage: python examples/visualize_convnets.py {activations,filters,saliency,gradcam,all} [--model M.keras]
           [--image IMG] [--layer NAME] [--size PIXELS] [--out DIR] [--steps N]
Without --model, the Xception of `rconv.applications` (random weights, or --weights FILE) is used for filters
and gradcam, and a small convnet for activations. Without --image, a synthetic picture is drawn. PNGs go to --out.
"""
from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import rconv as keras
from rconv import layers, ops


# --- inputs ----------------------------------------------------------------------------------------------------

def synthetic_image(size: int, seed: int = 0) -> np.ndarray:
    """A (size, size, 3) uint8 picture: a bright disc and a bar on textured noise."""
    rng = np.random.default_rng(seed)
    img = rng.integers(20, 90, (size, size, 3)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    img[(yy - size * 0.35) ** 2 + (xx - size * 0.4) ** 2 < (size * 0.18) ** 2] = (230, 200, 60)
    img[(abs(yy - size * 0.75) < size * 0.06) & (abs(xx - size * 0.55) < size * 0.3)] = (60, 120, 230)
    return img.astype(np.uint8)


def get_img_array(path, size):
    if path is None:
        return synthetic_image(size)[None].astype("float32")
    img = keras.utils.load_img(path, target_size=(size, size))
    return keras.utils.img_to_array(img)[None]


def small_convnet(size):
    inputs = keras.Input(shape=(size, size, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    for filters in (16, 32, 64):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def xception(size, weights=None, include_top=True):
    return keras.applications.xception.Xception(weights=weights, include_top=include_top,
                                                input_shape=(size, size, 3), classes=1000 if include_top else 1000)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# --- 9.4.1 intermediate activations ------------------------------------------------------------------------------

def activations(model, img_tensor, out_dir, images_per_row=8):
    layer_outputs, layer_names = [], []
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.MaxPooling2D)):
            layer_outputs.append(layer.output)
            layer_names.append(layer.name)
    activation_model = keras.Model(inputs=model.input, outputs=layer_outputs)
    activations = activation_model.predict(img_tensor, verbose=0)
    plt = _plt()
    paths = []
    for layer_name, layer_activation in zip(layer_names, activations):
        n_features = layer_activation.shape[-1]
        size = layer_activation.shape[1]
        n_cols = max(1, n_features // images_per_row)
        display_grid = np.zeros(((size + 1) * n_cols - 1, images_per_row * (size + 1) - 1))
        for col in range(n_cols):
            for row in range(images_per_row):
                channel_index = col * images_per_row + row
                if channel_index >= n_features:
                    continue
                channel_image = layer_activation[0, :, :, channel_index].copy()
                if channel_image.sum() != 0:
                    channel_image -= channel_image.mean()
                    channel_image /= channel_image.std() + 1e-7
                    channel_image *= 64
                    channel_image += 128
                channel_image = np.clip(channel_image, 0, 255).astype("uint8")
                display_grid[col * (size + 1): (col + 1) * size + col,
                             row * (size + 1): (row + 1) * size + row] = channel_image
        scale = 1.0 / size
        plt.figure(figsize=(scale * display_grid.shape[1], scale * display_grid.shape[0]))
        plt.title(layer_name)
        plt.grid(False)
        plt.axis("off")
        plt.imshow(display_grid, aspect="auto", cmap="viridis")
        path = os.path.join(out_dir, f"activations_{layer_name}.png")
        plt.savefig(path)
        plt.close()
        paths.append(path)
    return paths


# --- 9.4.2 filter patterns by gradient ascent ---------------------------------------------------------------------

def compute_loss(feature_extractor, image, filter_index):
    activation = feature_extractor(image)
    filter_activation = activation[:, 2:-2, 2:-2, filter_index]
    return ops.mean(filter_activation)


def gradient_ascent_step(feature_extractor, image, filter_index, learning_rate):
    with keras.GradientTape() as tape:
        tape.watch(image)
        loss = compute_loss(feature_extractor, image, filter_index)
    grads = tape.gradient(loss, image)
    grads = ops.normalize(grads)
    image = image + learning_rate * grads
    return image


def generate_filter_pattern(feature_extractor, filter_index, size, iterations=30, learning_rate=10.0):
    image = np.random.default_rng(filter_index).uniform(0.4, 0.6, (1, size, size, 3)).astype("float32")
    for _ in range(iterations):
        image = gradient_ascent_step(feature_extractor, image, filter_index, learning_rate)
    return np.asarray(image[0])


def deprocess_image(image):
    image = image - image.mean()
    image /= image.std() + 1e-7
    image *= 64
    image += 128
    image = np.clip(image, 0, 255).astype("uint8")
    return image[25:-25, 25:-25, :] if min(image.shape[:2]) > 60 else image


def filters(model, layer_name, size, out_dir, count=8, iterations=30):
    layer = model.get_layer(name=layer_name)
    feature_extractor = keras.Model(inputs=model.input, outputs=layer.output)
    all_images = [deprocess_image(generate_filter_pattern(feature_extractor, i, size, iterations))
                  for i in range(count)]
    margin = 5
    n = int(np.ceil(np.sqrt(count)))
    cropped = all_images[0].shape[0]
    stitched = np.zeros((n * cropped + (n - 1) * margin, n * cropped + (n - 1) * margin, 3), "uint8")
    for k, image in enumerate(all_images):
        i, j = divmod(k, n)
        stitched[i * (cropped + margin): i * (cropped + margin) + cropped,
                 j * (cropped + margin): j * (cropped + margin) + cropped] = image
    path = os.path.join(out_dir, f"filters_for_layer_{layer_name}.png")
    keras.utils.save_img(path, stitched)
    return path


# --- saliency and 9.4.3 Grad-CAM --------------------------------------------------------------------------------

def saliency(model, img_array, out_dir, class_index=None):
    image = ops.convert_to_tensor(img_array)
    with keras.GradientTape() as tape:
        tape.watch(image)
        preds = model(image)
        index = int(np.argmax(preds[0])) if class_index is None else class_index
        score = preds[:, index]
    grads = tape.gradient(score, image)
    saliency_map = np.max(np.abs(grads[0]), axis=-1)
    saliency_map /= saliency_map.max() + 1e-12
    plt = _plt()
    path = os.path.join(out_dir, "saliency.png")
    plt.imsave(path, saliency_map, cmap="hot")
    return path, saliency_map


def last_conv_layer_name(model):
    for layer in reversed(model.layers):
        if len(getattr(layer, "output_shape", ()) or ()) == 4:
            return layer.name
    raise ValueError("the model has no 4-D (image) layer output")


def make_gradcam_heatmap(img_array, model, last_conv_layer_name, pred_index=None):
    """The Keras example's function, line for line (`tf.*` -> `rconv` / `rconv.ops`)."""
    grad_model = keras.models.Model(model.inputs, [model.get_layer(last_conv_layer_name).output, model.output])
    with keras.GradientTape() as tape:
        last_conv_layer_output, preds = grad_model(img_array)
        tape.watch(last_conv_layer_output)
        if pred_index is None:
            pred_index = ops.argmax(preds[0])
        class_channel = preds[:, pred_index]
    grads = tape.gradient(class_channel, last_conv_layer_output)
    pooled_grads = ops.mean(grads, axis=(0, 1, 2))
    last_conv_layer_output = last_conv_layer_output[0]
    heatmap = last_conv_layer_output @ pooled_grads[..., None]
    heatmap = ops.squeeze(heatmap)
    heatmap = ops.maximum(heatmap, 0) / (ops.max(heatmap) + 1e-12)
    return np.asarray(heatmap)


def save_and_display_gradcam(img, heatmap, cam_path, alpha=0.4):
    import matplotlib
    heatmap = np.uint8(255 * heatmap)
    jet = matplotlib.colormaps["jet"]
    jet_colors = jet(np.arange(256))[:, :3]
    jet_heatmap = jet_colors[heatmap]
    jet_heatmap = keras.utils.array_to_img(jet_heatmap)
    jet_heatmap = jet_heatmap.resize((img.shape[1], img.shape[0]))
    jet_heatmap = keras.utils.img_to_array(jet_heatmap)
    superimposed_img = jet_heatmap * alpha + img
    superimposed_img = keras.utils.array_to_img(superimposed_img)
    superimposed_img.save(cam_path)
    return cam_path


def gradcam(model, img_array, out_dir, layer_name=None):
    layer_name = layer_name or last_conv_layer_name(model)
    heatmap = make_gradcam_heatmap(img_array, model, layer_name)
    path = save_and_display_gradcam(img_array[0], heatmap, os.path.join(out_dir, "gradcam.png"))
    return path, heatmap


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["activations", "filters", "saliency", "gradcam", "all"])
    parser.add_argument("--model")
    parser.add_argument("--weights")
    parser.add_argument("--image")
    parser.add_argument("--layer")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="visualize-convnets-"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    keras.utils.set_random_seed(0)
    loaded = keras.models.load_model(args.model) if args.model else None
    size = args.size or (loaded.input_shape[1] if loaded is not None else 96)
    img_array = get_img_array(args.image, size)
    results = {}
    if args.what in ("activations", "all"):
        results["activations"] = activations(loaded or small_convnet(size), img_array, args.out)
    if args.what in ("filters", "all"):
        model = loaded or xception(size, args.weights, include_top=False)
        results["filters"] = filters(model, args.layer or ("block3_sepconv1" if loaded is None else
                                                           last_conv_layer_name(model)), size, args.out,
                                     iterations=args.steps)
    if args.what in ("saliency", "all"):
        results["saliency"] = saliency(loaded or xception(size, args.weights), img_array, args.out)[0]
    if args.what in ("gradcam", "all"):
        model = loaded or xception(size, args.weights)
        results["gradcam"] = gradcam(model, img_array, args.out, args.layer or
                                     ("block14_sepconv2_act" if loaded is None else None))[0]
    for what, paths in results.items():
        print(what, paths)
    return results


if __name__ == "__main__":
    main()
