/** gptqjs's version, read from its package.json (found upward from this file: works from src/ and from a build). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findVersion(): string {
  for (let d = dirname(fileURLToPath(import.meta.url)), i = 0; i < 5; i++, d = dirname(d)) {
    try {
      const p = JSON.parse(readFileSync(join(d, 'package.json'), 'utf8'));
      if (p.name === 'gptqjs' && typeof p.version === 'string') return p.version;
    } catch { /* not here */ }
  }
  return '0.0.0-unknown';
}

export const VERSION: string = findVersion();
/** What gptqjs records as the quantizer of a checkpoint (quantize_config.json meta.quantizer), as GPTQModel does. */
export const QUANTIZER_ID = `gptqjs:${VERSION}`;
