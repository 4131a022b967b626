/** gptqjs's version (package.json "version", src/paths.ts) and its quantizer id. */
import { packageVersion } from './paths.ts';

export const VERSION: string = packageVersion();
/** What gptqjs records as the quantizer of a checkpoint (quantize_config.json meta.quantizer), as GPTQModel does. */
export const QUANTIZER_ID = `gptqjs:${VERSION}`;
