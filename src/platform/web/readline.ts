/** Browser side of src/platform/readline.ts: line reading of local files needs Node (calibration text comes as strings in a page). */
import { fail } from '../../errors.ts';

export function createInterface(): never {
  return fail('reading dataset files line by line is not available in the browser build of gptqjs; pass the calibration texts as strings');
}
