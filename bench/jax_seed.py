"""The seed's training loop in JAX (and Keras 3 on JAX), timed per epoch like `accel train`.

  jax_seed.py --mode step|scan|keras --batch-size 64 --epochs 2

step:  a jitted training step (forward, cross-entropy, backward, PyTorch's Adam) called once
       per batch from Python, the batch gathered and scaled on the host as accel's loader does;
scan:  a whole epoch as one jitted lax.scan over the batches (data on the device, gathered
       inside the scan; the short last batch is dropped: 937 steps at batch 64 instead of 938);
--pjrt-plugin PATH runs step or scan on that PJRT plugin (PyPI xla-cpu-pjrt: the compiler
`accel train --device xla` uses) instead of jaxlib's own XLA CPU.
keras: Keras 3's compile/fit with the JAX backend (Dense 256 relu, Dense 10, Adam, sparse
       categorical cross-entropy from logits).
Compilation happens before the timed epochs. Prints one JSON line like torch_seed.py.
Needs the bench venv (bench/setup-venv.sh): JAX 0.12, Keras 3.
"""
import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np

from idx import read_idx


def init_params(key):
    """PyTorch's nn.Linear initialisation: uniform in +-1/sqrt(fan_in) for weights and biases."""
    def linear(key, fan_in, fan_out):
        kw, kb = jax.random.split(key)
        bound = 1.0 / np.sqrt(fan_in)
        return (jax.random.uniform(kw, (fan_out, fan_in), jnp.float32, -bound, bound),
                jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound))
    k1, k2 = jax.random.split(key)
    return [linear(k1, 784, 256), linear(k2, 256, 10)]


def loss_fn(params, x, y):
    (w1, b1), (w2, b2) = params
    h = jax.nn.relu(x @ w1.T + b1)
    logits = h @ w2.T + b2
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0])


def adam_update(params, grads, state, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """PyTorch's Adam (bias-corrected, eps outside the square root)."""
    m, v, t = state
    t = t + 1
    m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
    params = jax.tree_util.tree_map(lambda p, m, v: p - lr / bc1 * m / (jnp.sqrt(v / bc2) + eps), params, m, v)
    return params, (m, v, t)


@jax.jit
def train_step(params, state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    params, state = adam_update(params, grads, state)
    return params, state, loss


def run_jax(args, images, labels):
    params = init_params(jax.random.PRNGKey(0))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = (zeros, zeros, jnp.zeros((), jnp.float32))
    n, batch = images.shape[0], args.batch_size
    rng = np.random.default_rng(0)
    epochs = []
    if args.mode == "step":
        x0 = jnp.asarray(images[:batch], jnp.float32) / 255.0
        jax.block_until_ready(train_step(params, state, x0, jnp.asarray(labels[:batch])))  # compile
        for epoch in range(1, args.epochs + 1):
            order = rng.permutation(n)
            start = time.perf_counter()
            total = 0.0
            for begin in range(0, n, batch):
                idx = order[begin:begin + batch]
                x = jnp.asarray(images[idx].astype(np.float32) / 255.0)
                params, state, loss = train_step(params, state, x, jnp.asarray(labels[idx]))
                total += loss  # stays on the device: no sync per step
            total = float(total)
            epochs.append({"epoch": epoch, "train_seconds": time.perf_counter() - start,
                           "loss": total / ((n + batch - 1) // batch)})
        return epochs

    steps = n // batch
    device_images = jnp.asarray(images)
    device_labels = jnp.asarray(labels)

    @jax.jit
    def train_epoch(params, state, order):
        def body(carry, idx):
            params, state = carry
            x = device_images[idx].astype(jnp.float32) / 255.0
            params, state, loss = train_step(params, state, x, device_labels[idx])
            return (params, state), loss
        (params, state), losses = jax.lax.scan(body, (params, state), order.reshape(steps, batch))
        return params, state, jnp.mean(losses)

    warm = jnp.asarray(rng.permutation(n)[:steps * batch])
    jax.block_until_ready(train_epoch(params, state, warm))  # compile
    for epoch in range(1, args.epochs + 1):
        order = jnp.asarray(rng.permutation(n)[:steps * batch])
        start = time.perf_counter()
        params, state, loss = train_epoch(params, state, order)
        loss = float(loss)
        epochs.append({"epoch": epoch, "train_seconds": time.perf_counter() - start, "loss": loss})
    return epochs


def run_keras(args, images, labels):
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append({"epoch": epoch + 1, "train_seconds": time.perf_counter() - self.start,
                                "loss": float(logs["loss"])})

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = images.astype(np.float32) / 255.0
    model.fit(x[:args.batch_size * 4], labels[:args.batch_size * 4], batch_size=args.batch_size, epochs=1,
              verbose=0)  # compile the train function
    timer = EpochTimer()
    model.fit(x, labels, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0, callbacks=[timer])
    return timer.epochs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["step", "scan", "keras"], default="step")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--pjrt-plugin", default="",
                        help="run on this PJRT plugin (e.g. PyPI xla-cpu-pjrt's .so) instead of jaxlib's built-in "
                             "XLA CPU: the same compiler accel --device xla uses")
    args = parser.parse_args()
    if args.pjrt_plugin:
        from jax._src import xla_bridge
        xla_bridge.register_plugin("pjrt_plugin", library_path=args.pjrt_plugin)
        jax.config.update("jax_platforms", "pjrt_plugin")
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz")).reshape(-1, 784)
    labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int32)
    epochs = run_keras(args, images, labels) if args.mode == "keras" else run_jax(args, images, labels)
    backend = f"PJRT plugin {args.pjrt_plugin}" if args.pjrt_plugin else f"XLA CPU ({jax.devices()[0].platform})"
    print(json.dumps({"jax": jax.__version__, "blas": f"{backend}, JAX {jax.__version__}",
                      "epochs": epochs}))


if __name__ == "__main__":
    main()
