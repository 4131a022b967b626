/** Browser side of src/platform/zlib.ts: gzip-compressed dataset shards are read as file streams, which need Node. */
import { fail } from '../../errors.ts';

export function createGunzip(): never {
  return fail('reading .gz dataset files is not available in the browser build of gptqjs; pass the texts as strings');
}
