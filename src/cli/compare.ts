/** `gptq compare A B --task …`: declared and run in eval.ts (same flags as `gptq eval`). */
export { runCompare as run, COMPARE as COMMAND, COMPARE_HELP as HELP } from './eval.ts';
