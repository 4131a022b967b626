/** Explicit garbage collection for the big typed arrays of model weights, activations and Hessians. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFn: (() => void) | null | undefined;

/**
 * Best-effort full garbage collection, so that large typed arrays that became unreachable are freed now rather
 * than when V8's heuristics get to them (their memory lives outside the JS heap, where V8 reacts late). Uses V8's
 * gc() (exposed at run time); array buffers are released by a background sweeper, hence the short waits.
 */
export async function collectGarbage(): Promise<void> {
  const gc = gcFunction();
  if (!gc) return;
  for (let i = 0; i < 2; i++) { gc(); await new Promise((r) => setTimeout(r, 25)); }
  pending = 0;
}

function gcFunction(): (() => void) | null {
  if (gcFn === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    try { gcFn = exposed ?? (setFlagsFromString('--expose-gc'), runInNewContext('gc') as () => void); } catch { gcFn = null; }
  }
  return gcFn;
}

let pending = 0;

/**
 * Record `bytes` of fresh garbage; once 64 MB have piled up, run a quick gc(). onnxruntime-node returns a new
 * ArrayBuffer copy even for an output bound to a preallocated tensor, so each bound run makes output-sized garbage
 * (a 485 MB Hessian per calibration batch) that V8 would otherwise collect late.
 */
export function noteGarbage(bytes: number): void {
  pending += bytes;
  if (pending < 64e6) return;
  pending = 0;
  gcFunction()?.();
}
