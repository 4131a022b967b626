/**
 * Browser side of src/serve/server.ts: an HTTP server needs Node (node:http). The types stay importable; calling
 * serve() in a page fails with one line. (In a page, use CausalLM / BatchEngine directly.)
 */
import type * as nodeServe from '../../serve/server.ts';
import type { ServeOptions, Server } from '../../serve/server.ts';
import { fail } from '../../errors.ts';

export type { ServeOptions, Server };

export async function serve(_o: ServeOptions): Promise<Server> {
  return fail('serve(): the HTTP server runs in Node only (node:http); in a page use CausalLM or BatchEngine directly');
}

/** Compile-time check that this module offers what src/serve/server.ts exports. */
({ serve }) satisfies Omit<typeof nodeServe, never>;
