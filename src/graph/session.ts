import * as ort from '../platform/ort.ts';
import { ortNativeDir } from '../platform/ort.ts';
import { availableParallelism } from '../platform/os.ts';
import { existsSync } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import { fail } from '../errors.ts';
import { noteGarbage } from '../gc.ts';

export type Device = 'cpu' | 'webgpu' | 'cuda';
export interface SessionOptions {
  device?: Device; threads?: number; optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** No CPU memory arena / memory-pattern planning: buffers go back to the OS after each run (several big sessions). */
  lowMemory?: boolean;
  /** Intra-op threads busy-wait between kernels (ORT's default: true); false is kinder to other load on the machine. */
  spinning?: boolean;
}

export const DEVICES: readonly Device[] = ['cpu', 'webgpu', 'cuda'];

export function parseDevice(s: string | undefined): Device {
  const d = (s ?? 'cpu').toLowerCase();
  if (!(DEVICES as readonly string[]).includes(d)) fail(`unknown device "${s}" (supported: ${DEVICES.join(', ')})`);
  return d as Device;
}

/**
 * Fails in one line when `device` cannot work in this installation, before ONNX Runtime prints its raw log: `cuda`
 * needs the CUDA execution provider libraries that onnxruntime-node's install script downloads on Linux x64
 * (libonnxruntime_providers_cuda.so next to its binding; `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild
 * onnxruntime-node`, see its README "CUDA EP Installation") plus CUDA 12 and cuDNN 9 on the system.
 */
let cudaChecked = false;
export function checkDeviceAvailable(device: Device): void {
  if (device !== 'cuda' || cudaChecked) return;
  if (process.platform !== 'linux' || process.arch !== 'x64')
    fail(`--device cuda: onnxruntime-node ships the CUDA execution provider for Linux x64 only (this is ${process.platform}/${process.arch}); use --device cpu${process.platform === 'linux' ? '' : ' or webgpu'}`);
  const bin = ortNativeDir();
  if (!bin) return;
  if (!existsSync(join(bin, 'libonnxruntime_providers_cuda.so')))
    fail(`--device cuda: onnxruntime-node's CUDA execution provider is not installed (no libonnxruntime_providers_cuda.so in ${bin}); install it with \`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node\` (downloads ORT's CUDA 12 binaries; needs CUDA 12 and cuDNN 9 on the system)`);
  cudaChecked = true;
}

/** Create an ORT session from model bytes (or an .onnx file path). `cuda` needs ORT's CUDA EP installed (see README). */
export async function createSession(model: Uint8Array | string, o: SessionOptions = {}): Promise<ort.InferenceSession> {
  const device = o.device ?? 'cpu';
  checkDeviceAvailable(device);
  const threads = o.threads ?? availableParallelism();
  try {
    const so: ort.InferenceSession.SessionOptions = {
      executionProviders: device === 'cpu' ? ['cpu'] : [device, 'cpu'],
      graphOptimizationLevel: o.optimization ?? 'all',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      ...(o.lowMemory ? { enableCpuMemArena: false, enableMemPattern: false } : {}),
      ...(o.spinning === undefined ? {} : { extra: { session: { intra_op: { allow_spinning: o.spinning ? '1' : '0' } } } }),
    };
    return await (typeof model === 'string' ? ort.InferenceSession.create(model, so) : ort.InferenceSession.create(model, so));
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    if (device === 'cuda' && /shared library|libcu|cudnn/i.test(msg)) fail(`--device cuda: ONNX Runtime could not load the CUDA libraries (${msg}); the CUDA execution provider needs CUDA 12 and cuDNN 9 on the library path`);
    if (device !== 'cpu') fail(`could not create an ONNX Runtime session on device "${device}": ${msg}`);
    throw e;
  }
}

export function f32(data: Float32Array, dims: readonly number[]): ort.Tensor { return new ort.Tensor('float32', data, dims); }
/** float16 tensor from raw IEEE half bits. */
export function f16(data: Uint16Array, dims: readonly number[]): ort.Tensor { return new ort.Tensor('float16', data, dims); }
export function f64(data: Float64Array, dims: readonly number[]): ort.Tensor { return new ort.Tensor('float64', data, dims); }
export function i64(data: BigInt64Array | readonly number[], dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', data instanceof BigInt64Array ? data : BigInt64Array.from(data.map(BigInt)), dims);
}
export function u8(data: Uint8Array, dims: readonly number[]): ort.Tensor { return new ort.Tensor('uint8', data, dims); }
export function i32(data: Int32Array, dims: readonly number[]): ort.Tensor { return new ort.Tensor('int32', data, dims); }

/**
 * session.run with outputs written into preallocated tensors (`null`: allocated by ORT). onnxruntime-node still
 * returns a fresh copy of every output, bound or not; the bound ones' bytes go to noteGarbage so those copies are
 * collected early instead of piling up outside V8's heap.
 */
export async function runInto(s: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>): Promise<ort.InferenceSession.ReturnType> {
  const r = await s.run(feeds, fetches as ort.InferenceSession.FetchesType);
  noteGarbage(Object.values(fetches).reduce((a, t) => a + (t ? (t.data as ArrayBufferView).byteLength : 0), 0));
  return r;
}
