"""Export a trained run (or any model) for serving and devices.

    python -m effnet_tf.export --model_dir runs/b0 --format saved_model --output export/b0
    python -m effnet_tf.export --model_dir runs/b0 --format tflite_int8 --output b0_int8.tflite

Formats: ``keras`` (.keras file, reloads with safe_mode), ``saved_model`` (signatures
``serving_default`` on float pixels in [0, 255] and ``serve_image_bytes`` on encoded images,
decoded and center-cropped like evaluation, both returning class probabilities), and
``tflite`` / ``tflite_float16`` / ``tflite_int8`` (int8 calibrated on eval images).
The averaged (EMA) weights are exported when the run has them.
"""

from __future__ import annotations

import os

from absl import app, flags

from effnet_tf import flags as effnet_flags

FORMATS = ("keras", "saved_model", "tflite", "tflite_float16", "tflite_int8")


def with_softmax(model):
    """The logits model with a float32 softmax on top (what serving callers want)."""
    import keras

    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(
        model.output)
    return keras.Model(model.input, outputs, name=model.name)


def export_saved_model(model, path: str, image_size: int) -> None:
    """SavedModel with a pixel signature and an encoded-image signature."""
    import keras
    import tensorflow as tf

    from pipelines import make_eval_preprocess

    def from_bytes(encoded):
        images = tf.map_fn(make_eval_preprocess(image_size), encoded,
                           fn_output_signature=tf.float32)
        return model(images, training=False)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)])
    archive.add_endpoint("serve_image_bytes", from_bytes,
                         input_signature=[tf.TensorSpec([None], tf.string)])
    archive.write_out(path, verbose=False)


def check_args(model_dir: str, fmt: str, output: str, calibration_batches: int) -> None:
    """The arguments' mistakes, before TensorFlow is imported."""
    effnet_flags.check_model_dir(model_dir)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "keras" and not output.endswith(".keras"):
        raise ValueError(f"output for format keras must end in .keras, got {output!r}")
    if fmt == "tflite_int8" and calibration_batches < 1:
        raise ValueError(f"--calibration_batches must be >= 1, got {calibration_batches}")


def export_run(model_dir: str, fmt: str, output: str, calibration_batches: int = 8) -> str:
    check_args(model_dir, fmt, output, calibration_batches)
    from effnet_tf.training.restore import load_trained

    trained = load_trained(model_dir)
    model = with_softmax(trained.model)
    if fmt == "keras":
        model.save(output)
    elif fmt == "saved_model":
        export_saved_model(model, output, trained.image_size)
    else:
        from effnet_tf.deploy import tflite

        quantization = {"tflite": "float32", "tflite_float16": "float16",
                        "tflite_int8": "int8"}[fmt]
        representative = None
        if quantization == "int8":
            from effnet_tf.training.data import DataSpec

            data = DataSpec.from_config(trained.config, trained.image_size, model_dir)
            representative = data.dataset(trained.config.eval_split, False, 8).map(
                lambda x, y: x).take(calibration_batches)
        blob = tflite.convert(model, quantization=quantization,
                              representative_data=representative)
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "wb") as f:
            f.write(blob)
    return output


def main(argv):
    if len(argv) > 1:
        effnet_flags.fail(f"unexpected arguments: {' '.join(argv[1:])} (flags are --name=value)")
    f = flags.FLAGS
    try:
        path = export_run(f.model_dir, f.format, f.output, f.calibration_batches)
    except (ValueError, FileNotFoundError) as e:
        effnet_flags.fail(str(e))
    print(f"Wrote {f.format} to {path}")


def define_flags():
    flags.DEFINE_string("model_dir", None, "Run directory written by effnet_tf.train.")
    flags.DEFINE_enum("format", "saved_model", list(FORMATS), "What to write.")
    flags.DEFINE_string("output", None, "Output file (keras, tflite*) or directory (saved_model).")
    flags.DEFINE_integer("calibration_batches", 8, "Eval batches of 8 images for int8 calibration.")
    flags.mark_flags_as_required(["model_dir", "output"])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=effnet_flags.parse_flags)
