#!/usr/bin/python3
"""PyTorch side of the teacher-forced seed parity test (tests/parity/teacher_forced_parity_test.cpp).

For each step the test sends the state accel started that step from (the weights, Adam's moments
and step count, the batch) and the gradients accel computed. This script answers, in float64
PyTorch from exactly the same float32 values:
  - the loss and the gradients (autograd),
  - Adam's update (torch.optim.Adam) applied to accel's gradients: new weights and moments,
and, next to each value, the largest difference that float32 rounding can explain (the bound
derivation is below, and in the test's header). Nothing is compared here: the test compares.

Protocol (little-endian, on stdin/stdout), per step until end of input:
  in:  int64 step, int64 batch; float32 x[batch*inputs]; int64 y[batch];
       float32 params[4], exp_avg[4], exp_avg_sq[4], grads[4]   (w1, b1, w2, b2 each)
  out: float64 loss, loss_bound; int64 undecided;
       float64 grad[4], grad_bound[4];
       float64 (param, param_bound, exp_avg, exp_avg_bound, exp_avg_sq, exp_avg_sq_bound)[4]
Run with /usr/bin/python3 (Debian's python3-torch).
"""
import argparse
import sys

import numpy as np
import torch

U = 2.0 ** -24  # unit roundoff of float32


def gamma(n):
    """Higham's gamma_n: the relative bound on a float32 sum of n terms, in any order."""
    return n * U / (1 - n * U)


def read_exact(stream, nbytes):
    buf = bytearray(nbytes)
    view = memoryview(buf)
    got = 0
    while got < nbytes:
        n = stream.readinto(view[got:])
        if not n:
            return None if got == 0 else sys.exit("torch_step_reference: truncated request")
        got += n
    return buf


def read_array(stream, dtype, shape):
    count = int(np.prod(shape))
    buf = read_exact(stream, count * np.dtype(dtype).itemsize)
    if buf is None:
        sys.exit("torch_step_reference: truncated request")
    return np.frombuffer(buf, dtype=dtype).reshape(shape).astype(np.float64 if dtype == np.float32 else dtype)


def forward_backward_bounds(x, y, w1, b1, w2, b2):
    """Loss, gradients and their float32 rounding bounds (first order, elementwise).

    Each float32 matrix product of reduction length K is within gamma_K * (|A| @ |B|) of the
    exact one, for any summation order (blocked, FMA, threads); errors already in A or B carry
    through as E_A @ |B| + |A| @ E_B. A ReLU whose input is within its bound of 0 is undecided:
    either engine may take either side, so its gradient counts fully in the bound. exp, log and
    division are allowed 32 units of roundoff (vectorised exp/log are within a few).
    """
    n = x.shape[0]
    ax = np.abs(x)
    z1 = x @ w1.T + b1
    e_z1 = gamma(w1.shape[1] + 1) * (ax @ np.abs(w1).T + np.abs(b1))
    h = np.maximum(z1, 0)
    e_h = np.where(z1 > -e_z1, e_z1, 0.0)
    z2 = h @ w2.T + b2
    e_z2 = gamma(w2.shape[1] + 1) * (h @ np.abs(w2).T + np.abs(b2)) + e_h @ np.abs(w2).T

    zmax = z2.max(axis=1, keepdims=True)
    s = np.exp(z2 - zmax).sum(axis=1, keepdims=True)
    lse = zmax + np.log(s)
    z_y = z2[np.arange(n), y][:, None]
    l = (lse - z_y)[:, 0]
    worst_z2 = e_z2.max(axis=1)
    e_l = 2 * worst_z2 + 32 * U * (np.abs(zmax[:, 0]) + np.abs(np.log(s[:, 0])) + np.abs(z_y[:, 0]) + np.abs(l))
    loss_bound = e_l.mean() + gamma(n) * np.abs(l).mean()

    p = np.exp(z2 - lse)
    e_p = p * (2 * worst_z2[:, None] + 32 * U)
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1
    dz2 = (p - onehot) / n
    e_dz2 = e_p / n + U * np.abs(dz2)
    adz2 = np.abs(dz2)
    g_w2 = gamma(n) * adz2.T @ h + e_dz2.T @ h + adz2.T @ e_h
    g_b2 = gamma(n) * adz2.sum(axis=0) + e_dz2.sum(axis=0)
    dh = dz2 @ w2
    e_dh = gamma(w2.shape[0]) * adz2 @ np.abs(w2) + e_dz2 @ np.abs(w2)
    undecided = np.abs(z1) <= e_z1
    e_dz1 = np.where(undecided, np.abs(dh) + e_dh, np.where(z1 > 0, e_dh, 0.0))
    adz1 = np.abs(np.where(z1 > 0, dh, 0.0))
    g_w1 = gamma(n) * adz1.T @ ax + e_dz1.T @ ax
    g_b1 = gamma(n) * adz1.sum(axis=0) + e_dz1.sum(axis=0)
    return loss_bound, [g_w1, g_b1, g_w2, g_b2], int(undecided.sum())


def adam_bounds(m, v, g, p_new, m_new, v_new, args, step):
    """Rounding bounds of one float32 Adam step (PyTorch's formula) next to the float64 one.

    Hyperparameters are rounded to float32 once (u each); m' = b1 m + (1-b1) g and
    v' = b2 v + (1-b2) g^2 add a few roundings of their terms; the update
    lr/bc1 * m' / (sqrt(v')/sqrt(bc2) + eps) is relative rel(m') + rel(v')/2 + ~8u.
    """
    b1, b2 = args.beta1, args.beta2
    e_m = 4 * U * (b1 * np.abs(m) + (1 - b1) * np.abs(g))
    e_v = 5 * U * (b2 * v + (1 - b2) * g * g)
    bc1 = 1 - b1 ** step
    bc2 = 1 - b2 ** step
    step_size = args.lr / bc1
    denom = np.sqrt(v_new) / np.sqrt(bc2) + args.eps
    update = step_size * np.abs(m_new) / denom
    rel_v = np.divide(e_v, 2 * v_new, out=np.zeros_like(v_new), where=v_new > 0)
    e_update = update * (rel_v + 8 * U) + step_size * e_m / denom
    e_p = e_update + U * np.abs(p_new)
    return e_p, e_m, e_v


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta1", type=float, default=0.9)
    parser.add_argument("--beta2", type=float, default=0.999)
    parser.add_argument("--eps", type=float, default=1e-8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    shapes = [(args.hidden, args.inputs), (args.hidden,), (args.classes, args.hidden), (args.classes,)]
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    while True:
        header = read_exact(stdin, 16)
        if header is None:
            return 0
        step, batch = np.frombuffer(header, dtype=np.int64)
        x = read_array(stdin, np.float32, (batch, args.inputs))
        y = read_array(stdin, np.int64, (batch,))
        params, exp_avg, exp_avg_sq, grads = ([read_array(stdin, np.float32, s) for s in shapes] for _ in range(4))

        # The loss and gradients by PyTorch's autograd in float64, from accel's float32 state.
        model = torch.nn.Sequential(torch.nn.Linear(args.inputs, args.hidden), torch.nn.ReLU(),
                                    torch.nn.Linear(args.hidden, args.classes)).double()
        with torch.no_grad():
            for t, value in zip(model.parameters(), params):
                t.copy_(torch.from_numpy(value))
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        ref_grads = [t.grad.numpy() for t in model.parameters()]
        loss_bound, grad_bounds, undecided = forward_backward_bounds(x, y, *params)

        # Adam's update by torch.optim.Adam in float64, applied to accel's gradients.
        tensors = [torch.nn.Parameter(torch.from_numpy(value.copy())) for value in params]
        optimizer = torch.optim.Adam(tensors, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)
        for t, g, m, v in zip(tensors, grads, exp_avg, exp_avg_sq):
            t.grad = torch.from_numpy(g)
            optimizer.state[t] = {"step": torch.tensor(float(step - 1)), "exp_avg": torch.from_numpy(m.copy()),
                                  "exp_avg_sq": torch.from_numpy(v.copy())}
        optimizer.step()

        out = [np.array([loss.item(), loss_bound]), np.array([undecided], dtype=np.int64)]
        for g, e in zip(ref_grads, grad_bounds):
            out += [g, e]
        for t, g, m, v in zip(tensors, grads, exp_avg, exp_avg_sq):
            state = optimizer.state[t]
            p_new, m_new, v_new = t.detach().numpy(), state["exp_avg"].numpy(), state["exp_avg_sq"].numpy()
            e_p, e_m, e_v = adam_bounds(m, v, g, p_new, m_new, v_new, args, step)
            out += [p_new, e_p, m_new, e_m, v_new, e_v]
        for array in out:
            stdout.write(np.ascontiguousarray(array, dtype=array.dtype).tobytes())
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
