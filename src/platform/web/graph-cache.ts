/**
 * Browser side of src/runtime/graph-cache.ts: no compiled-graph cache in the browser (graphs are rebuilt at each load;
 * for the models a tab can hold this takes a fraction of the load). CausalLM.load sees "no cache" and builds.
 */
import type * as nodeCache from '../../runtime/graph-cache.ts';
import type { GraphCacheOption } from '../../runtime/graph-cache.ts';
import { fail } from '../../errors.ts';

export type { GraphCacheOption };

export async function graphCacheKey(_dir: string, _options: Record<string, unknown>): Promise<string> {
  return fail('the graph cache is not available in the browser');
}

export const GraphCache = {
  forCheckpoint: async (_opt: GraphCacheOption, _dir: string) => undefined,
  open: (_opt: GraphCacheOption) => undefined,
} as unknown as typeof nodeCache.GraphCache;

({ graphCacheKey, GraphCache }) satisfies typeof nodeCache;
