#!/usr/bin/env bash
# The measured scale table of this machine, as recorded in BUILD.md: Keras and TFLite
# (XNNPACK) latency at batch 1 and 8, training images/s at batch 8, then TFLite int8.
#   bash benchmarks/device_table.sh [b0,b1,b2,b3]        (~15 min on 2 cores for b0..b3)
# Run it on the target device (it needs TensorFlow); with only the TFLite runtime there,
# time converted files instead: python -m effnet_tf.scale latency model.tflite
set -euo pipefail
export TF_CPP_MIN_LOG_LEVEL=2
variants="${1:-b0,b1,b2,b3}"
python -m effnet_tf.scale table --variants="$variants" --measure --runtime=keras,tflite \
    --batch_size=8
python -m effnet_tf.scale table --variants="$variants" --measure --runtime=tflite \
    --quantization=int8 --notrain --batch_size=8
