"""Writes the example notebooks (outputs stripped) from the cells below.

    python examples/make_notebooks.py

Edit here, regenerate, commit both; tests/test_notebooks.py executes the notebooks.
"""

import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = ('import os\n'
         '# The test suite sets EFFNET_TF_NOTEBOOK_SMALL=1 to run everything tiny on 2 CPU cores.\n'
         'SMALL = os.environ.get("EFFNET_TF_NOTEBOOK_SMALL") == "1"')
INSTALL = ('# In Colab, install the package first (TensorFlow is already there):\n'
           '# !pip install -q "effnet_tf @ git+https://github.com/effnet-tf/effnet_tf"')

QUICKSTART = [
    new_markdown_cell(
        "# effnet_tf quickstart\n\n"
        "Build EfficientNets B0-B7 (and any scale *phi*), look at what scaling costs, take "
        "multi-scale features for a detector, fine-tune on a small dataset with `model.fit`, "
        "predict top-k labels and export to TFLite."),
    new_code_cell(INSTALL),
    new_code_cell(SMALL + "\nimport numpy as np\nimport keras\nimport effnet_tf\n"
                  "print(effnet_tf.__version__, keras.__version__)"),
    new_markdown_cell("## Pretrained weights in one argument\n\n`weights=\"imagenet\"` "
                      "downloads keras.applications' file once into `~/.keras/models` (checked "
                      "against its published MD5); `\"advprop\"`, `\"noisy-student\"` and the "
                      "other official sets work the same way (`python -m effnet_tf.weights "
                      "list`). Inputs stay RGB in [0, 255] whatever the set. Without internet "
                      "this cell falls back to random weights."),
    new_code_cell("import socket\n"
                  "socket.setdefaulttimeout(20)  # fail fast where there is no internet\n"
                  "try:\n"
                  "    pretrained = effnet_tf.EfficientNet(\"b0\", weights=\"imagenet\")\n"
                  "    print(\"ImageNet weights loaded\")\n"
                  "except Exception as e:  # no network: the same model, random weights\n"
                  "    print(f\"Note: no ImageNet weights ({str(e)[:80]}); random weights "
                  "instead\")\n"
                  "    pretrained = effnet_tf.EfficientNet(\"b0\")\n"
                  "finally:\n"
                  "    socket.setdefaulttimeout(None)\n"
                  "print(pretrained.name, pretrained.output.shape)"),
    new_markdown_cell("## B0..B7 from the compound-scaling table\n\nParameters and FLOPs "
                      "(multiply-adds) come from the architecture, without building anything:"),
    new_code_cell("from effnet_tf.sizing.tables import format_table, summary_row\n"
                  "from effnet_tf.modeling.scaling import PUBLISHED, Scaling\n"
                  "print(format_table([summary_row(Scaling.variant(v)) for v in PUBLISHED]))"),
    new_code_cell("model = effnet_tf.EfficientNet(\"b0\")\n"
                  "model.summary(line_length=110, expand_nested=False)\n"
                  "assert model.count_params() == effnet_tf.count_params(\"b0\")"),
    new_markdown_cell("## Any phi, and the scaling curves\n\n`Scaling.from_phi` applies "
                      "`1.2**phi, 1.1**phi, 1.15**phi`; the published B1..B7 were rounded by "
                      "hand, so both are available and each model says which it is."),
    new_code_cell("from effnet_tf.sizing import plots, tables\n"
                  "rows = tables.table_rows(tables.scalings(phis=[x / 2 for x in range(-2, 17)]))\n"
                  "plots.plot_table(rows, \"scaling.png\")\n"
                  "from IPython.display import Image\nImage(\"scaling.png\")"),
    new_markdown_cell("## Feature maps for detection and segmentation"),
    new_code_cell("backbone = effnet_tf.EfficientNet(\"b3\", features_only=True, "
                  "input_shape=(None, None, 3))\n"
                  "maps = backbone(np.zeros((1, 256, 256, 3), \"float32\"))\n"
                  "for info, fmap in zip(effnet_tf.feature_info(\"b3\"), maps):\n"
                  "    print(f\"stride {info['stride']:2d}  {info['layer']:20s} {fmap.shape}\")"),
    new_markdown_cell("## Fine-tune on a small dataset with `model.fit`\n\n"
                      "Here a generated set of coloured shapes (4 classes, real JPEGs). For "
                      "your data use a folder `root/<class>/*.jpg`, `\"tfds:tf_flowers\"` or "
                      "TFRecords, and start from pretrained weights with a new head: "
                      "`effnet_tf.weights.load(model, \"imagenet\", skip_mismatch=True)`."),
    new_code_cell("import pipelines\nfrom pipelines.synthetic import write_image_folder\n\n"
                  "root = write_image_folder(\"shapes\", num_classes=4)\n"
                  "scaling = Scaling(\"tiny\", 0.25, 0.25, 64, 0.2) if SMALL "
                  "else Scaling.variant(\"b0\")\n"
                  "size = scaling.resolution\n"
                  "source = pipelines.get_source(root, validation_fraction=0.2)\n"
                  "train = pipelines.build(source, \"train\", image_size=size, batch_size=16, "
                  "runtime=pipelines.Runtime(seed=0))\n"
                  "val = pipelines.build(source, \"validation\", image_size=size, batch_size=16)\n"
                  "keras.utils.set_random_seed(0)  # the same start each run\n"
                  "model = effnet_tf.EfficientNet(scaling, classes=source.num_classes)\n"
                  "model.compile(keras.optimizers.Adam(3e-3), "
                  "\"sparse_categorical_crossentropy\", metrics=[\"accuracy\"])\n"
                  "history = model.fit(train, validation_data=val, epochs=3, "
                  "steps_per_epoch=20, verbose=2)"),
    new_markdown_cell("## Predict the top-k labels of an image"),
    new_code_cell("import tensorflow as tf\n"
                  "preprocess = pipelines.make_eval_preprocess(size)  # center crop, bicubic\n"
                  "image = preprocess(tf.io.read_file(f\"{root}/class_2/0001.jpg\"))\n"
                  "probs = model.predict(image[None], verbose=0)[0]\n"
                  "for k in np.argsort(-probs)[:3]:\n"
                  "    print(f\"{source.class_names[k]}: {probs[k]:.3f}\")"),
    new_markdown_cell("## Export to TFLite (float32 here; `float16` and `int8` too)"),
    new_code_cell("from effnet_tf.deploy import tflite\n"
                  "blob = tflite.convert(model)\n"
                  "open(\"model.tflite\", \"wb\").write(blob)\n"
                  "lite = tflite.predict(blob, image[None].numpy())[0]\n"
                  "print(f\"{len(blob) / 1e6:.2f} MB; max difference to Keras: "
                  "{np.abs(lite - probs).max():.2e}\")"),
]

COLAB_TPU = [
    new_markdown_cell(
        "# Training on a Colab TPU (JAX)\n\n"
        "Runtime > Change runtime type > TPU (v5e-1 in the free tier, v6e, ...). Colab's TPU "
        "runtimes are TPU VMs that come with JAX and, since 2025, without TensorFlow "
        "(`tensorflow-tpu` conflicts with their libtpu; `TPUClusterResolver` finds no TPU). So "
        "this notebook trains under **Keras' JAX backend**: the global batch is sharded over "
        "every TPU core (`keras.distribution.DataParallel`), each step is compiled by XLA, "
        "checkpoints are written by Orbax to `gs://`, and TensorFlow's CPU build only reads "
        "and prepares the images (tf.data), as in big_vision and flax's ImageNet example. "
        "Run it again after a disconnect: it resumes where it stopped.\n\n"
        "**What was run for real:** the test suite executes this notebook on CPU under the "
        "JAX backend with two simulated devices and a tiny config (the fallback below). It "
        "was not run on a real TPU by the project: the TPU branch follows JAX's and Keras' "
        "documented APIs, unverified on hardware."),
    new_code_cell(
        "# On Colab's TPU runtime: the package with Orbax and TensorFlow's CPU build (for\n"
        "# tf.data); JAX stays the runtime's own. On a bare TPU VM use [tpu] (jax[tpu]).\n"
        "# !pip install -q \"effnet_tf[jax] @ git+https://github.com/effnet-tf/effnet_tf\""),
    new_code_cell(SMALL + "\nos.environ[\"KERAS_BACKEND\"] = \"jax\"  # before Keras is imported\n"
                  "import jax\n\n"
                  "# The CPU fallback's two simulated devices, set before JAX starts (a TPU\n"
                  "# runtime's TPU devices are not affected)\n"
                  "jax.config.update(\"jax_num_cpu_devices\", 2)\n"
                  "ON_TPU = jax.devices()[0].platform == \"tpu\" and not SMALL\n"
                  "print(f\"{jax.device_count()} {jax.devices()[0].platform} device(s)\" if ON_TPU\n"
                  "      else \"no TPU: JAX on CPU, two simulated devices, tiny config\")"),
    new_markdown_cell("## The recipe\n\nOn a TPU: B0 on ImageNet from TFDS in a `gs://` "
                      "bucket, bfloat16, the paper's recipe (`configs/tpu.py`'s batch). "
                      "Elsewhere: the same recipe, tiny, on generated images."),
    new_code_cell("import tempfile\nfrom effnet_tf.training.config import get_config\n\n"
                  "BUCKET = \"gs://your-bucket\"  # <- yours: data and checkpoints live here\n"
                  "config = get_config()\n"
                  "if ON_TPU:\n"
                  "    config.update(dict(mixed_precision=\"mixed_bfloat16\", variant=\"b0\",\n"
                  "                       dataset=\"tfds:imagenet2012\", "
                  "data_dir=f\"{BUCKET}/tensorflow_datasets\",\n"
                  "                       global_batch_size=1024, epochs=350, "
                  "checkpoint_every_steps=1000))\n"
                  "    model_dir = f\"{BUCKET}/runs/b0\"  # Orbax writes gs:// directly\n"
                  "else:\n"
                  "    config.update(dict(cpu_devices=2, width_coefficient=0.25, "
                  "depth_coefficient=0.25,\n"
                  "                       image_size=32, dataset=\"synthetic\", num_classes=4, "
                  "augment=\"none\",\n"
                  "                       global_batch_size=16, epochs=2, steps_per_epoch=8, "
                  "eval_steps=2,\n"
                  "                       optimizer=\"adam\", optimizer_epsilon=1e-7, "
                  "base_learning_rate=0.16,\n"
                  "                       batch_norm_momentum=0.9, ema_decay=0.9, "
                  "checkpoint_every_steps=8))\n"
                  "    model_dir = tempfile.mkdtemp(prefix=\"effnet_colab_\")\n"
                  "print(config)"),
    new_markdown_cell("## Train\n\nThe same function `python -m effnet_tf.train --backend jax` "
                      "runs. It prints the backend and devices, precision and image size, "
                      "writes TensorBoard logs and Orbax checkpoints to `model_dir`, and "
                      "evaluates with the averaged weights after every epoch. The first step "
                      "includes XLA's compilation (minutes for B0 on a TPU)."),
    new_code_cell("from effnet_tf.training.trainer import train_and_evaluate\n"
                  "result = train_and_evaluate(config, model_dir)"),
    new_markdown_cell("## After a disconnect: run again, it resumes\n\nColab sessions end; "
                      "the checkpoints in `model_dir` do not. Re-running the training cell "
                      "(here with one more epoch) picks up at the last checkpoint."),
    new_code_cell("config.epochs += 1\nresult = train_and_evaluate(config, model_dir)\n"
                  "print(result[\"step\"], result[\"top1\"])"),
    new_markdown_cell("## Evaluate, predict, export\n\nA JAX run's directory is read by "
                      "`python -m effnet_tf.evaluate` under either backend, and by `predict` "
                      "and `export` (SavedModel, TFLite) under TensorFlow's CPU build."),
    new_code_cell("# TensorBoard (in Colab):\n# %load_ext tensorboard\n"
                  "# %tensorboard --logdir {model_dir}/logs"),
]


def write(name, cells):
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "accelerator": "TPU" if "tpu" in name else "None"})
    nbformat.write(notebook, os.path.join(HERE, name))


if __name__ == "__main__":
    write("quickstart.ipynb", QUICKSTART)
    write("colab_tpu.ipynb", COLAB_TPU)
