/**
 * Prometheus metrics of `gptq serve` (text exposition format at GET /metrics), on prom-client with a registry per
 * server (so several servers in one process, e.g. tests, keep separate counts). Names follow Prometheus conventions
 * (`_total` counters, `_seconds` units) with the prefix `gptq_`.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets (seconds) from 5 ms to 60 s. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60];

export class ServeMetrics {
  readonly registry = new Registry();
  /** HTTP requests by route and status code */
  readonly requests = new Counter({ name: 'gptq_requests_total', help: 'HTTP requests by route and status code', labelNames: ['route', 'status'] as const, registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'gptq_prompt_tokens_total', help: 'Prompt tokens of admitted generation requests', registers: [this.registry] });
  readonly generatedTokens = new Counter({ name: 'gptq_generated_tokens_total', help: 'Tokens generated (sampled), all requests', registers: [this.registry] });
  readonly finished = new Counter({ name: 'gptq_generations_total', help: 'Finished generations by finish reason (stop, length, cancelled, error)', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: 'gptq_queue_depth', help: 'Requests waiting for a KV slot', registers: [this.registry] });
  readonly activeSlots = new Gauge({ name: 'gptq_active_slots', help: 'Requests holding a KV slot (prefilling or decoding): the active batch', registers: [this.registry] });
  readonly decodeBatch = new Histogram({ name: 'gptq_decode_batch_size', help: 'Requests per batched decode step (a lone request runs with one padding row, not counted)', buckets: [1, 2, 4, 8, 16, 32, 64], registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'gptq_time_to_first_token_seconds', help: 'From the request\'s arrival (queue wait included) to its first generated token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly itl = new Histogram({ name: 'gptq_inter_token_latency_seconds', help: 'Between consecutive generated tokens of a request', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly stepSeconds = new Histogram({ name: 'gptq_step_seconds', help: 'Model runs by kind (decode: one token for every decoding request; prefill: one prompt chunk)', labelNames: ['kind'] as const, buckets: LATENCY_BUCKETS, registers: [this.registry] });

  /** The exposition text and its content type. */
  async text(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
