"""Writes the NumPy files tests/data/data_sources_test.cpp reads, with NumPy itself (Debian's
python3-numpy), so the reader is checked against the real writer: python3 make_numpy_files.py DIR"""
import sys

import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(0)
np.save(f"{out}/f32.npy", np.arange(12, dtype=np.float32).reshape(3, 4) / 4)
np.save(f"{out}/u8.npy", np.arange(8, dtype=np.uint8).reshape(2, 2, 2))
np.save(f"{out}/i64.npy", np.array([-3, 0, 7, 1 << 40, 5], dtype=np.int64))
np.save(f"{out}/f64.npy", np.array([0.1, -2.5], dtype=np.float64))
np.save(f"{out}/bool.npy", np.array([True, False, True]))
np.save(f"{out}/scalar.npy", np.float32(2.5))
np.save(f"{out}/fortran.npy", np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
np.save(f"{out}/big_endian.npy", np.ones(3, dtype=">f4"))
np.save(f"{out}/complex.npy", np.ones(3, dtype=np.complex64))
with open(f"{out}/f32.npy", "rb") as f:
    whole = f.read()
with open(f"{out}/truncated.npy", "wb") as f:
    f.write(whole[:-5])
# Keras's layout: 4x4 "images" whose class is the brightest quadrant.
def images(n):
    x = rng.integers(0, 120, size=(n, 4, 4), dtype=np.uint8)
    y = rng.integers(0, 4, size=n).astype(np.uint8)
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[i, 2 * r:2 * r + 2, 2 * col:2 * col + 2] += 130
    return x, y
x_train, y_train = images(400)
x_test, y_test = images(100)
np.savez(f"{out}/keras.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
np.savez_compressed(f"{out}/compressed.npz", x_train=x_train.astype(np.float32) / 255, y_train=y_train.astype(np.int64),
                    x_test=x_test.astype(np.float32) / 255, y_test=y_test.astype(np.int64))
np.savez(f"{out}/no_test.npz", x_train=x_train, y_train=y_train)
np.savez(f"{out}/narrow_test.npz", x_train=x_train, y_train=y_train, x_test=x_test[:, :3, :], y_test=y_test)
for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
    with open(f"{out}/{name}.csv", "w") as f:
        f.write("label," + ",".join(f"pixel{i + 1}" for i in range(16)) + "\n")
        for row, label in zip(x.reshape(len(x), -1), y):
            f.write(f"{label}," + ",".join(str(v) for v in row) + "\n")
print("ok")
