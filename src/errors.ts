/** A user-facing error: one line that names the file / tensor / field at fault. */
export class GptqError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GptqError';
  }
}

export function fail(message: string): never {
  throw new GptqError(message);
}
