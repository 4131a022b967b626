/**
 * gptqjs in the browser (`import … from 'gptqjs/browser'`): the whole public API of the Node entry, running on
 * onnxruntime-web, plus the browser's file system (src/platform/web/vfs.ts):
 *
 *   const dir = await mountUrl('/models/stories260K/');        // or mountFiles(input.files) for a picked folder
 *   const lm = await CausalLM.load(dir);                        // generate / stream / nll / perplexity
 *   const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits: 4, groupSize: 32 } });
 *   await m.quantize(texts, { nsamples: 16, seqlen: 256, onProgress });
 *   await m.saveQuantized('/out');                              // an in-memory folder …
 *   const zip = await zipFolder('/out');                        // … as one AutoGPTQ-format .zip Blob
 *
 * How it works: modules that touch Node (file system, paths, ONNX Runtime package, Hub downloads, graph cache, gc)
 * sit behind seams in src/platform/; the package.json "browser" field makes bundlers (esbuild, Vite, webpack) take
 * the src/platform/web/* versions. No `node:` module is reachable from this entry (test/browser.test.ts builds it).
 * Set `ort.env.wasm.wasmPaths` to where the page serves onnxruntime-web's .wasm/.mjs files before loading a model.
 * Not in the browser: the compiled-graph cache, resumable work dirs, dataset downloads, pushing to the Hub.
 */
export * from './index.ts';
export * as ort from './platform/ort.ts';
export {
  mountUrl, mountFiles, unmount, listFiles, readFileBytes, fileBlob, zipFolder, MODEL_FILE_NAMES,
  type MountUrlOptions, type PickedFile, type ByteSource,
} from './platform/web/vfs.ts';
