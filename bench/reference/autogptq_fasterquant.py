"""Times AutoGPTQ's GPTQ.fasterquant on the shapes of `npm run bench:gptq`, on this CPU, for the ratio in #17.

AutoGPTQ itself is not on the wheel mirrors, so its arithmetic is re-typed here from auto_gptq/quantization/gptq.py
(GPTQ.add_batch, GPTQ.fasterquant, step for step, without the logging); its Quantizer (find_params / quantize, mse off)
is the one scripts/fixtures/make_quantizer_fixtures.py re-typed. Reference tooling only: nothing of this runs in the product.

Run in a throwaway venv with torch (CPU):
  python bench/reference/autogptq_fasterquant.py            (GPTQ_BENCH_SHAPES="4096x4096,11008x4096,4096x11008", THREADS=2)
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'scripts', 'fixtures'))
from make_quantizer_fixtures import Quantizer  # noqa: E402  AutoGPTQ's Quantizer, re-typed once for the fixtures

THREADS = int(os.environ.get('THREADS', '2'))
torch.set_num_threads(THREADS)  # after the import: the fixture script pins 1 thread for its own summation order
SHAPES = [tuple(int(v) for v in s.split('x')) for s in os.environ.get('GPTQ_BENCH_SHAPES', '4096x4096,11008x4096,4096x11008').split(',')]
NTOK, BITS, GROUP, BLOCK, DAMP = 2048, 4, 128, 128, 0.01


def add_batch(H, nsamples, inp):  # GPTQ.add_batch for one [tokens, in] batch of a Linear
    tmp = 1
    inp = inp.t()
    H *= nsamples / (nsamples + tmp)
    nsamples += tmp
    inp = (2 / nsamples) ** 0.5 * inp.float()
    H += inp.matmul(inp.t())
    return H, nsamples


def fasterquant(W, H):
    W = W.clone().float()
    columns = W.shape[1]
    quantizer = Quantizer().configure(BITS, sym=True)
    quantizer.find_params(W)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    scale, zero, now_idx = [], [], 1
    Losses = torch.zeros_like(W)
    Q = torch.zeros_like(W)
    t0 = time.perf_counter()
    damp = DAMP * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    t1 = time.perf_counter()
    for i1 in range(0, columns, BLOCK):
        i2 = min(i1 + BLOCK, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if (i1 + i) % GROUP == 0:
                quantizer.find_params(W[:, (i1 + i):(i1 + i + GROUP)])
            if ((i1 + i) // GROUP) - now_idx == -1:
                scale.append(quantizer.scale)
                zero.append(quantizer.zero)
                now_idx += 1
            q = quantizer.quantize(w.unsqueeze(1)).flatten()
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d ** 2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        Losses[:, i1:i2] = Losses1 / 2
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    t2 = time.perf_counter()
    return Q, torch.sum(Losses).item(), t1 - t0, t2 - t1


def main():
    print(f'autogptq fasterquant (re-typed), torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{BITS}-bit g{GROUP}, {NTOK} tokens; BLAS: {torch.backends.cpu.get_cpu_capability()}')
    torch.manual_seed(0)
    for out_f, in_f in SHAPES:
        X = torch.randn(NTOK, in_f) + 0.5 * torch.randn(NTOK, 16).repeat(1, in_f // 16)
        H = torch.zeros(in_f, in_f)
        t = time.perf_counter()
        H, _ = add_batch(H, 0, X)
        th = time.perf_counter() - t
        W = torch.randn(out_f, in_f) * 0.02
        best = None
        for _ in range(int(os.environ.get('REPEAT', '2'))):
            t = time.perf_counter()
            _, loss, tinv, tloop = fasterquant(W, H.clone())
            tot = time.perf_counter() - t
            if best is None or tot < best[0]:
                best = (tot, tinv, tloop, loss)
        tot, tinv, tloop, loss = best
        print(f'{out_f}x{in_f} (out x in): add_batch {th:.2f} s | fasterquant {tot:.2f} s = hessian inverse {tinv:.2f}'
              f' + column loop {tloop:.2f} (best of {os.environ.get("REPEAT", "2")}) | loss {loss:.4e}')


if __name__ == '__main__':
    main()
