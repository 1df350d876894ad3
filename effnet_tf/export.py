"""Export a trained run (or any model) for serving and devices.

    python -m effnet_tf.export --model_dir runs/b0 --format saved_model --output export/b0
    python -m effnet_tf.export --model_dir runs/b0 --format tflite_int8 --output b0_int8.tflite

Formats: ``keras`` (.keras file, reloads with safe_mode), ``saved_model`` (signatures
``serving_default`` on float pixels in [0, 255] and ``serve_image_bytes`` on encoded images,
decoded and center-cropped like evaluation, both returning class probabilities), and
``tflite`` / ``tflite_float16`` / ``tflite_int8`` (int8 calibrated on training images).
The averaged (EMA) weights are exported when the run has them. The work is
``effnet_tf.deploy.formats.export_run``.
"""

from __future__ import annotations

from absl import app, flags

from effnet_tf import flags as effnet_flags

effnet_flags.tensorflow_backend("export")  # before Keras loads
from effnet_tf.deploy.formats import FORMATS, export_run  # noqa: E402


def main(argv):
    if len(argv) > 1:
        effnet_flags.fail(f"unexpected arguments: {' '.join(argv[1:])} (flags are --name=value)")
    f = flags.FLAGS
    try:
        effnet_flags.check_model_dir(f.model_dir)
        effnet_flags.check_output(f.output)
        path = export_run(f.model_dir, f.format, f.output, f.calibration_batches)
    except (ValueError, FileNotFoundError) as e:
        effnet_flags.fail(str(e))
    print(f"Wrote {f.format} to {path}")


def define_flags():
    flags.DEFINE_string("model_dir", None, "Run directory written by effnet_tf.train.")
    flags.DEFINE_enum("format", "saved_model", list(FORMATS), "What to write.")
    flags.DEFINE_string("output", None, "Output file (keras, tflite*) or directory (saved_model).")
    flags.DEFINE_integer("calibration_batches", 8, "int8: batches of 8 training images "
                         "(prepared as for evaluation) to calibrate with.")
    flags.mark_flags_as_required(["model_dir", "output"])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=effnet_flags.parse_flags)
