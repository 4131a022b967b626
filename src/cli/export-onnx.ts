/** `gptq export-onnx MODEL OUT`: the inference graph as an onnxruntime-genai model folder (src/export/onnx.ts). */
import { commandHelp, JSON_FLAG, parseCommand, type CommandSpec } from './flags.ts';
import { createOutput, fmtBytes } from './output.ts';
import { exportOnnx, type ExportAttention } from '../export/onnx.ts';
import type { AccuracyLevel } from '../runtime/quantized-weights.ts';
import type { LmHeadBits } from '../runtime/lm-head.ts';

export const COMMAND = {
  name: 'export-onnx',
  description: `Writes the graph gptqjs runs for MODEL (GPTQ/AWQ linears on com.microsoft.MatMulNBits, KV cache inputs and
outputs) to OUT as a model folder for ONNX Runtime GenAI (onnxruntime-genai): model.onnx with its weights as external
data in model.onnx.data, genai_config.json, and the tokenizer files. Inputs input_ids, attention_mask, position_ids,
past_key_values.%d.key/value; outputs logits (every position), present.%d.key/value. --attention gqa (the default where
the model allows it) uses GroupQueryAttention with past_present_share_buffer true, as onnxruntime-genai's model builder
writes it (CPU execution provider); plain uses standard ONNX attention with a Concat cache (any execution provider).
OUT must be new or empty; --overwrite replaces only the files an export writes.`,
  positionals: [
    { name: 'model', help: 'a local model directory (fp, GPTQ, AWQ, bitsandbytes, AQLM) or a Hub id owner/name', required: true },
    { name: 'OUT', help: 'the folder to write', required: true },
  ],
  flags: [
    { name: 'attention', type: 'string', oneOf: ['auto', 'gqa', 'plain'], default: 'auto', help: 'auto = gqa when every layer can run GroupQueryAttention, else plain' },
    { name: 'accuracy-level', type: 'int', oneOf: [0, 1, 2, 3, 4], default: 0, help: 'MatMulNBits accuracy_level written into the graph: 0 = fp32 activations (exact), 4 = int8 activations (faster on CPU)' },
    { name: 'lm-head-bits', type: 'int', oneOf: [0, 4, 8], default: 0, help: 'output head round-to-nearest quantized onto MatMulNBits: 8 = int8 (int8 activations), 4 = int4; 0 = the checkpoint\'s head (fp32, exact)' },
    { name: 'context-length', type: 'int', min: 1, metavar: 'N', defaultText: 'max_position_embeddings', help: 'genai_config.json context_length and search.max_length (the KV buffer onnxruntime-genai allocates)' },
    { name: 'overwrite', type: 'boolean', help: 'write into a non-empty OUT: replace the exported files, keep every other file' },
    JSON_FLAG,
  ],
  epilog: 'example:\n  npx gptq export-onnx ./llama-gptq ./llama-gptq-onnx\n  python -c "import onnxruntime_genai as og; m = og.Model(\'./llama-gptq-onnx\')"',
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  const ui = createOutput({ json: v.json });
  const r = await exportOnnx(p[0]!, p[1]!, {
    attention: v.attention as ExportAttention, accuracyLevel: v['accuracy-level'] as AccuracyLevel, contextLength: v['context-length'],
    lmHeadBits: v['lm-head-bits'] as LmHeadBits | 0, overwrite: v.overwrite, onLog: (m) => ui.note(m),
  });
  const q = `${r.quantization ? `, ${r.quantization.modules.length} quantized modules` : ''}${r.lmHeadBits ? `, ${r.lmHeadBits}-bit output head` : ''}`;
  ui.result(r, `wrote ${r.out} for onnxruntime-genai: ${r.files.map((f) => `${f.name} (${fmtBytes(f.bytes)})`).join(', ')}; attention ${r.attention} (past_present_share_buffer ${r.pastPresentShareBuffer}), context ${r.contextLength}${q} (${r.seconds.toFixed(1)} s)`);
}
