/**
 * What a command prints besides its result. Three forms, chosen once per run:
 *   --json       stdout: one JSON object at the end (the result); stderr: JSON lines
 *                {"event":"progress",…ProgressEvent} and {"event":"note","message":…}
 *   terminal     progress bars on stderr (cli-progress), notes printed above them
 *   piped        one plain stderr line per step (per module / layer, per ppl batch, per downloaded file)
 */
import { MultiBar, type SingleBar } from 'cli-progress';
import type { ProgressEvent } from '../progress.ts';
import { cliMessage } from '../errors.ts';

export function fmtSeconds(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${Math.round(s % 60)}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

export const fmtBytes = (n: number) => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

const rss = () => `${(process.memoryUsage.rss() / 1e9).toFixed(2)} GB`;

/** One plain line for an event, or undefined when the event is not a step worth a line when piped. */
export function progressLine(e: ProgressEvent): string | undefined {
  switch (e.task) {
    case 'download':
      return e.fileDone ? `downloaded ${e.repo} ${e.file} (${fmtBytes(e.fileBytes)}; file ${e.fileIndex}/${e.files}, ${fmtBytes(e.done)}${e.total ? ` of ${fmtBytes(e.total)}` : ''}, ETA ${fmtSeconds(e.eta)})` : undefined;
    case 'eval':
      return `${e.evalTask} ${e.stage} ${e.done}/${e.total}  elapsed ${fmtSeconds(e.elapsed)}, ETA ${fmtSeconds(e.eta)}`;
    case 'perplexity':
      return `ppl window ${e.done}/${e.total}: running ppl ${e.ppl.toFixed(4)}  elapsed ${fmtSeconds(e.elapsed)}, ETA ${fmtSeconds(e.eta)}`;
    case 'quantize': {
      const L = `layer ${e.layer + 1}/${e.layers}`;
      if (e.stage === 'capture') return `calibration: ${e.message}`;
      if (e.stage === 'module') return `${L} ${e.module!.padEnd(18)} loss ${Number.isNaN(e.loss) ? '   -   ' : e.loss!.toExponential(3)}  ${e.seconds!.toFixed(2)}s  rss ${rss()}`;
      if (e.stage === 'skip') return `${L} ${e.module!.padEnd(18)} kept in full precision: ${e.message}`;
      if (e.stage === 'layer-done') return `${L} done, elapsed ${fmtSeconds(e.elapsed)}, ETA ${fmtSeconds(e.eta)}, rss ${rss()}`;
      return undefined;
    }
  }
}

/** Label and detail shown on a terminal bar. */
function barText(e: ProgressEvent): { label: string; detail: string; value: number; total: number } {
  switch (e.task) {
    case 'download':
      return { label: `download ${e.file}`.slice(0, 40), detail: `${fmtBytes(e.done)}/${fmtBytes(e.total)}  file ${e.fileIndex}/${e.files}  ETA ${fmtSeconds(e.eta)}`, value: e.done, total: Math.max(e.total, 1) };
    case 'eval':
      return { label: `${e.evalTask}`.slice(0, 24), detail: `${e.stage} ${e.done}/${e.total}  elapsed ${fmtSeconds(e.elapsed)}  ETA ${fmtSeconds(e.eta)}`, value: e.done, total: Math.max(e.total, 1) };
    case 'perplexity':
      return { label: 'perplexity', detail: `window ${e.done}/${e.total}  ppl ${e.ppl.toFixed(4)}  elapsed ${fmtSeconds(e.elapsed)}  ETA ${fmtSeconds(e.eta)}`, value: e.done, total: e.total };
    case 'quantize': {
      const what = e.module ? `${e.module}${e.loss !== undefined && !Number.isNaN(e.loss) ? ` loss ${e.loss.toExponential(2)}` : ''}` : e.stage;
      return { label: 'quantize', detail: `layer ${Math.min(e.layer + 1, e.layers)}/${e.layers} ${what}  elapsed ${fmtSeconds(e.elapsed)}  ETA ${fmtSeconds(e.eta)}  rss ${rss()}`, value: e.done, total: e.total };
    }
  }
}

export interface Output {
  readonly json: boolean;
  /** A note or warning (one stderr line; a JSON line with --json). */
  note(msg: string): void;
  /** A progress event: bar, plain line or JSON line. */
  progress(e: ProgressEvent): void;
  /** Ends any bar (call before printing the result). */
  stop(): void;
  /** The result: `json` as one JSON object on stdout with --json, else `text` on stdout. */
  result(json: unknown, text?: string): void;
}

export function createOutput(o: { json: boolean; tty?: boolean }): Output {
  const tty = o.tty ?? !!process.stderr.isTTY;
  let multi: MultiBar | undefined;
  const bars = new Map<string, SingleBar>();
  const stop = () => { multi?.stop(); multi = undefined; bars.clear(); };
  const line = (s: string) => {
    if (multi) multi.log(`${s}\n`);
    else process.stderr.write(`${s}\n`);
  };
  return {
    json: o.json,
    note(message) {
      const msg = cliMessage(message); // library notes name options as the CLI spells them
      // the event already says it is a note: no "note: " prefix inside it
      if (o.json) process.stderr.write(`${JSON.stringify({ event: 'note', message: msg.replace(/^note: /, '') })}\n`);
      else line(msg);
    },
    progress(e) {
      if (o.json) { process.stderr.write(`${JSON.stringify({ event: 'progress', ...e })}\n`); return; }
      if (!tty) { const s = progressLine(e); if (s) process.stderr.write(`${s}\n`); return; }
      // Terminal: the step lines that carry results (module losses, skipped modules) stay above the bar.
      if (e.task === 'quantize' && (e.stage === 'module' || e.stage === 'skip' || e.stage === 'capture')) line(progressLine(e)!);
      multi ??= new MultiBar({
        stream: process.stderr, hideCursor: true, clearOnComplete: false, stopOnComplete: false, barsize: 24,
        format: '{label} [{bar}] {percentage}% | {detail}', autopadding: true, fps: 5,
      });
      const t = barText(e);
      let bar = bars.get(e.task);
      if (!bar) { bar = multi.create(t.total, t.value, { label: t.label, detail: t.detail }); bars.set(e.task, bar); }
      bar.setTotal(t.total);
      bar.update(t.value, { label: t.label, detail: t.detail });
    },
    stop,
    result(json, text) {
      stop();
      if (o.json) process.stdout.write(`${JSON.stringify(json)}\n`);
      else if (text !== undefined) process.stdout.write(`${text}\n`);
    },
  };
}
