/** Browser side of src/gc.ts: pages cannot trigger garbage collection; both calls are no-ops. */
export async function collectGarbage(): Promise<void> {}
export function noteGarbage(_bytes: number): void {}
