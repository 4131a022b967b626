/** A user-facing error: one line that names the file / tensor / field at fault. */
export class GptqError extends Error {
  /** `exitCode`: the CLI's exit status for it (default 1; 130 for an interrupt, the shell's 128 + SIGINT). */
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'GptqError';
  }
}

export function fail(message: string): never {
  throw new GptqError(message);
}

/**
 * An option named for both audiences of a library error: "`overwrite: true` (CLI: --overwrite)". The library throws
 * it as is; the CLI prints only the flag (cliMessage), so each reader sees the spelling they can type.
 */
export function option(library: string, cli: string): string {
  return `\`${library}\` (CLI: ${cli})`;
}

/** A library error message as the CLI prints it: every option() becomes its CLI spelling. */
export function cliMessage(message: string): string {
  return message.replace(/`[^`\n]+` \(CLI: ([^()\n]+)\)/g, '$1');
}
