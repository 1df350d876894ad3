"""The export formats, and a trained run written in one of them.

``keras`` (.keras file, reloads with safe_mode), ``saved_model`` (``serving``'s signatures),
``tflite`` / ``tflite_float16`` / ``tflite_int8`` (int8 calibrated on training images,
prepared as the model takes them: the run's ``EvalPreprocess``). The averaged (EMA) weights
are exported when the run has them. TensorFlow is imported only by ``export_run``:
``check_format`` runs before it loads.
"""

from __future__ import annotations

import os

from effnet_tf.deploy.serving import export_saved_model, with_softmax

FORMATS = ("keras", "saved_model", "tflite", "tflite_float16", "tflite_int8")
TFLITE_QUANTIZATION = {"tflite": "float32", "tflite_float16": "float16", "tflite_int8": "int8"}


def check_format(fmt: str, output: str, calibration_batches: int) -> None:
    """The format arguments' mistakes, as one ``ValueError`` each."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "keras" and not output.endswith(".keras"):
        raise ValueError(f"output for format keras must end in .keras, got {output!r}")
    if fmt == "tflite_int8" and calibration_batches < 1:
        raise ValueError(f"--calibration_batches must be >= 1, got {calibration_batches}")


def export_run(model_dir: str, fmt: str, output: str, calibration_batches: int = 8) -> str:
    """Writes the trained run in ``model_dir`` as ``fmt`` to ``output``; returns ``output``."""
    check_format(fmt, output, calibration_batches)
    from effnet_tf.training.restore import load_trained

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)  # as `model.save` won't

    trained = load_trained(model_dir)
    model = with_softmax(trained.model)
    if fmt == "keras":
        model.save(output)
    elif fmt == "saved_model":
        export_saved_model(model, output, trained.spec.eval_preprocess())
    else:
        from effnet_tf.deploy import tflite

        quantization = TFLITE_QUANTIZATION[fmt]
        representative = None
        if quantization == "int8":
            from effnet_tf.training.data import RunData

            data = RunData.of_spec(trained.spec, model_dir)
            representative = data.calibration_images(calibration_batches)
        blob = tflite.convert(model, quantization=quantization,
                              representative_data=representative)
        with open(output, "wb") as f:
            f.write(blob)
    return output
