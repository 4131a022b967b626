/**
 * What `gptq inspect` reports for AWQ / bitsandbytes / AQLM checkpoints: the scheme, the quantized modules (checked
 * against the config and the architecture like the loader does, from headers; bitsandbytes' small quant-state JSON is
 * read), and where the storage goes (codes / scales / zeros / other tensors of the quantized linears).
 */
import type { Checkpoint } from '../io/safetensors.ts';
import { fail } from '../errors.ts';
import { aqlmModuleNames, aqlmSummary, checkAqlmModule, parseAqlmConfig } from './aqlm.ts';
import { awqModuleNames, awqSummary, checkAwqModule, parseAwqConfig } from './awq.ts';
import { BNB8_SUMMARY, bnb4ModuleNames, bnb4Summary, bnb8ModuleNames, checkBnb8Module, parseBnbConfig, readBnb4State } from './bnb.ts';
import { fileOf, type FormatSource } from './common.ts';

export interface FormatInspection {
  method: FormatSource['format'];
  summary: string;
  modules: string[];
  /** Bytes of the quantized linears' tensors by role. */
  bytes: { codes: number; scales: number; zeros: number; other: number };
}

type Spec = { inFeatures: number; outFeatures: number };

export async function inspectFormat(ck: Checkpoint, src: FormatSource, specOf: (m: string) => Spec | undefined): Promise<FormatInspection> {
  const spec = (m: string) => specOf(m) ?? fail(`${fileOf(ck)}: quantized module "${m}" is not a linear of the model's architecture`);
  const bytes = { codes: 0, scales: 0, zeros: 0, other: 0 };
  const add = (role: keyof typeof bytes, name: string) => { if (ck.has(name)) bytes[role] += ck.info(name).byteLength; };
  const others = (m: string, known: string[]) => {
    for (const n of ck.names()) if (n.startsWith(`${m}.`) && n !== `${m}.bias` && !known.includes(n.slice(m.length + 1))) add('other', n);
  };
  if (src.format === 'awq') {
    const c = parseAwqConfig(src), modules = awqModuleNames(ck);
    for (const m of modules) {
      checkAwqModule(ck, c, m, spec(m));
      add('codes', `${m}.qweight`); add('scales', `${m}.scales`); add('zeros', `${m}.qzeros`);
      others(m, ['qweight', 'scales', 'qzeros']);
    }
    return { method: 'awq', summary: awqSummary(c), modules, bytes };
  }
  if (src.format === 'bitsandbytes') {
    const c = parseBnbConfig(src);
    if (c.bits === 8) {
      const modules = bnb8ModuleNames(ck);
      for (const m of modules) {
        await checkBnb8Module(ck, m, spec(m));
        add('codes', `${m}.weight`); add('scales', `${m}.SCB`);
        others(m, ['weight', 'SCB']);
      }
      return { method: 'bitsandbytes', summary: BNB8_SUMMARY, modules, bytes };
    }
    const modules = bnb4ModuleNames(ck), states = [];
    for (const m of modules) {
      states.push(await readBnb4State(ck, m, spec(m)));
      add('codes', `${m}.weight`); add('scales', `${m}.weight.absmax`); add('scales', `${m}.weight.nested_absmax`);
      others(m, ['weight', 'weight.absmax', 'weight.nested_absmax']);
    }
    return { method: 'bitsandbytes', summary: modules.length ? bnb4Summary(states) : `bitsandbytes 4-bit ${c.quantType}`, modules, bytes };
  }
  const c = parseAqlmConfig(src), modules = aqlmModuleNames(ck);
  for (const m of modules) {
    checkAqlmModule(ck, c, m, spec(m));
    add('codes', `${m}.codes`); add('scales', `${m}.scales`);
    others(m, ['codes', 'scales']);
  }
  return { method: 'aqlm', summary: aqlmSummary(c), modules, bytes };
}
