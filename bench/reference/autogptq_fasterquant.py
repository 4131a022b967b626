"""Times AutoGPTQ's GPTQ.fasterquant on the shapes of `npm run bench:gptq`, on this CPU, for the ratio in #17.

AutoGPTQ itself is not on the wheel mirrors, so its arithmetic is the re-typing in
scripts/fixtures/make_quantizer_fixtures.py (GPTQ.add_batch as `hessian`, GPTQ.fasterquant and its Quantizer, mse off,
step for step, without the logging), timed with the fixture's per-column code recording off. Reference tooling only: nothing of
this runs in the product.

Run in a throwaway venv with torch (CPU):
  python bench/reference/autogptq_fasterquant.py            (GPTQ_BENCH_SHAPES="4096x4096,11008x4096,4096x11008", THREADS=2)
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'scripts', 'fixtures'))
from make_quantizer_fixtures import fasterquant, hessian  # noqa: E402  AutoGPTQ's, re-typed once for the fixtures

THREADS = int(os.environ.get('THREADS', '2'))
torch.set_num_threads(THREADS)  # after the import: the fixture script pins 1 thread for its own summation order
SHAPES = [tuple(int(v) for v in s.split('x')) for s in os.environ.get('GPTQ_BENCH_SHAPES', '4096x4096,11008x4096,4096x11008').split(',')]
NTOK, BITS, GROUP, BLOCK, DAMP = 2048, 4, 128, 128, 0.01


def main():
    print(f'autogptq fasterquant (re-typed), torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{BITS}-bit g{GROUP}, {NTOK} tokens; BLAS: {torch.backends.cpu.get_cpu_capability()}')
    torch.manual_seed(0)
    for out_f, in_f in SHAPES:
        X = torch.randn(NTOK, in_f) + 0.5 * torch.randn(NTOK, 16).repeat(1, in_f // 16)
        t = time.perf_counter()
        H = hessian([X.unsqueeze(0)])  # add_batch of one [1, tokens, in] batch
        th = time.perf_counter() - t
        W = torch.randn(out_f, in_f) * 0.02
        best = None
        for _ in range(int(os.environ.get('REPEAT', '2'))):
            marks = []
            t = time.perf_counter()
            loss = fasterquant(W, H, BITS, sym=True, blocksize=BLOCK, percdamp=DAMP, group_size=GROUP, record_codes=False, timer=marks)[-1]
            tot = time.perf_counter() - t
            tinv, tloop = marks[1] - marks[0], marks[2] - marks[1]
            if best is None or tot < best[0]:
                best = (tot, tinv, tloop, loss)
        tot, tinv, tloop, loss = best
        print(f'{out_f}x{in_f} (out x in): add_batch {th:.2f} s | fasterquant {tot:.2f} s = hessian inverse {tinv:.2f}'
              f' + column loop {tloop:.2f} (best of {os.environ.get("REPEAT", "2")}) | loss {loss:.4e}')


if __name__ == '__main__':
    main()
