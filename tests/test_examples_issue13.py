"""The Keras scripts issue 13 names run unchanged but for `keras` -> `rconv`, small: Keras 2's mnist_cnn.py
(backend.image_data_format, Adadelta) and keras-io's convolutional denoising autoencoder (Conv2DTranspose)."""
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def _run(script, *args):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_keras2_mnist_cnn():
    out = _run("mnist_cnn_keras2.py", "--epochs", "1", "--samples", "8000")
    accuracy = float(out.split("Test accuracy:")[1].split()[0])
    assert accuracy > 0.85, out[-1500:]


def test_conv_autoencoder_denoises():
    out = _run("conv_autoencoder.py", "--epochs", "2", "--samples", "3000")
    line = out.split("denoising loss ")[1]
    denoised, baseline = float(line.split()[0]), float(line.split(": ")[1].rstrip(")\n").split(")")[0])
    assert denoised < 0.8 * baseline, out[-1500:]  # real Keras: 0.342 against 0.486 with the same budget
