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
  if (gcFn === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    try { gcFn = exposed ?? (setFlagsFromString('--expose-gc'), runInNewContext('gc') as () => void); } catch { gcFn = null; }
  }
  if (!gcFn) return;
  for (let i = 0; i < 2; i++) { gcFn(); await new Promise((r) => setTimeout(r, 25)); }
}
