"""Convolution + batch norm + swish with a backward pass that keeps only the convolution's
input and works on a slice of the batch at a time (TensorFlow only, as ``remat`` is).

Where it is used: with ``remat``, for the widest conv + batch norm + swish triples
(``remat.FUSE_MIN_ELEMENTS``; on B0 at 224 px the stem and the expansions of block2a, 2b and
3a; block2a's is 32 x 112 x 112 x 96 at batch 32, 147 MB a tensor). There, automatic
differentiation holds five tensors of that size at once when it reaches swish's gradient (the
convolution's output, the batch norm's output, the incoming gradient, the sigmoid and one more
temporary: TensorFlow's allocator trace, ``benchmarks/train_memory.py``), which was B0's peak
training memory with ``remat``; in the stem, which is not recomputed, the first two are held
through the whole backward pass."""

from __future__ import annotations

import keras
import tensorflow as tf

# Batch slices of the backward pass: at 4 the temporaries are a quarter of the tensor (2 slices
# left B0's peak where it was: ``benchmarks/train_memory.py``).
CHUNKS = 4


def conv_batch_norm_swish(conv, bn, activation, x, chunks: int = CHUNKS):
    """``activation(bn(conv(x), training=True))`` whose backward pass keeps only ``x`` and
    runs in ``chunks`` slices of the batch, one after the other.

    The forward values are the layers' own (``bn`` computes batch statistics and updates its
    moving ones as always). The backward pass recomputes the convolution a batch slice at a
    time and uses the closed form of the batch norm gradient (Ioffe & Szegedy 2015, "Batch
    Normalization", section 3, arXiv:1502.03167), with the statistics recomputed from the
    convolution: ``dx = gamma / sigma / n * (n * dz - sum(dz) - xhat * sum(dz * xhat))``; the
    swish gradient is the one TensorFlow's ``tf.nn.silu`` computes (``s * (1 + z * (1 - s))``,
    s = sigmoid(z)). All but the per-channel sums is per image, so the temporaries are
    ``1 / chunks`` of the tensor; the convolution's own gradients come from a tape over each
    slice. float32 only (the caller's check): in bfloat16 the different rounding order moves
    gradients by several percent.
    """
    rank = len(x.shape)
    axis = bn.axis % rank
    axes = [a for a in range(rank) if a != axis]

    @tf.custom_gradient
    def fused(x):
        e = conv(x)
        y = activation(bn(e, training=True))
        # The batch statistics ``bn`` used (the same op on the same tensor): kept for the
        # backward pass, a few numbers per channel.
        mean, variance = keras.ops.moments(e, axes=axes)

        def grad(dy, variables=None):
            gamma, beta = bn.gamma.value, bn.beta.value
            rstd = tf.math.rsqrt(variance + bn.epsilon)
            inv = rstd * gamma  # as tf.nn.batch_normalization, so z is the forward's z
            shift = beta - mean * inv
            count = tf.cast(tf.size(dy) // tf.shape(dy)[axis], dy.dtype)
            kernel = conv.trainable_variables[0]

            def slice_dz(x_i, dy_i):
                """The convolution of a slice, and the gradient at the batch norm's output."""
                e = conv(x_i)
                z = e * inv + shift
                s = tf.sigmoid(z)
                return e, dy_i * (s * (1.0 + z * (1.0 - s)))

            def sliced(n):
                # n slices (TensorFlow's oneDNN convolution mishandles an empty batch, so none
                # may be empty: n <= batch). Two passes, each a slice at a time (the identities
                # wait for the previous slice): the first sums the batch norm's gradients, the
                # second recomputes each slice's (cheaper than holding them: a whole tensor).
                batch = tf.shape(x)[0]
                sizes = tf.stack([batch // n + tf.cast(i < batch % n, batch.dtype)
                                  for i in range(n)])
                xs, dys = tf.split(x, sizes, num=n), tf.split(dy, sizes, num=n)
                # The first slice also waits for the incoming gradient (a data dependency, as
                # ``tf.recompute_grad`` uses): else TensorFlow runs it as soon as x is there,
                # during the recomputed forward pass, and holds it through the block's backward.
                first = dys[0][(0,) * rank]
                dbeta, dgamma, previous = 0.0, 0.0, []
                for x_i, dy_i in zip(xs, dys):
                    with tf.control_dependencies(previous):
                        x_i, dy_i = tf.identity(x_i), tf.identity(dy_i)
                    if not previous:
                        x_i = x_i + 0.0 * first
                    e, dz = slice_dz(x_i, dy_i)
                    dbeta += tf.reduce_sum(dz, axes)
                    dgamma += tf.reduce_sum(dz * ((e - mean) * rstd), axes)
                    previous = [dbeta, dgamma]
                dxs, dkernel = [], 0.0
                for x_i, dy_i in zip(xs, dys):
                    with tf.control_dependencies(previous):
                        x_i, dy_i = tf.identity(x_i), tf.identity(dy_i)
                    with tf.GradientTape() as tape:
                        tape.watch(x_i)
                        e, dz = slice_dz(x_i, dy_i)
                    xhat = (e - mean) * rstd
                    de = (inv / count) * (count * dz - dbeta - xhat * dgamma)
                    dx_i, dk = tape.gradient(e, [x_i, kernel], output_gradients=de)
                    dxs.append(dx_i)
                    dkernel += dk
                    previous = [dx_i, dkernel]
                return tf.concat(dxs, 0), dgamma, dbeta, dkernel

            if x.shape[0] is not None:
                dx, dgamma, dbeta, dkernel = sliced(max(1, min(chunks, x.shape[0])))
            else:
                dx, dgamma, dbeta, dkernel = tf.cond(tf.shape(x)[0] >= chunks,
                                                     lambda: sliced(chunks), lambda: sliced(1))
            by_variable = {id(bn.gamma.value): dgamma, id(bn.beta.value): dbeta,
                           id(kernel.value): dkernel}
            return dx, [by_variable.get(id(v)) for v in (variables or [])]

        return y, grad

    return fused(x)
