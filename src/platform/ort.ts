/**
 * Platform seam: the ONNX Runtime package. Node: onnxruntime-node (native CPU EP, optional CUDA/WebGPU EPs). Browser
 * bundles get ./web/ort.ts (onnxruntime-web: WASM with threads + SIMD, WebGPU) through package.json's "browser"
 * field. Both packages share onnxruntime-common's InferenceSession/Tensor API.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export * from 'onnxruntime-node';

/** Name of the ONNX Runtime build ("onnxruntime-node" / "onnxruntime-web"), for messages. */
export const ORT_PACKAGE = 'onnxruntime-node';

/** Folder of onnxruntime-node's native Linux x64 binaries (where its CUDA EP library goes), if resolvable. */
export function ortNativeDir(): string | undefined {
  try { return join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', 'linux', 'x64'); } catch { return undefined; }
}
