/**
 * The prompt of a chat conversation (`gptq chat`, `gptq serve`'s /v1/chat/completions): the tokenizer's chat template
 * (tokenizer_config.json chat_template or chat_template.jinja, rendered by @huggingface/jinja with the generation
 * prompt, as transformers' apply_chat_template(add_generation_prompt=True)), or for tokenizers without one a plain
 * "User: … / Assistant: …" transcript whose replies end at eos or at the next "\nUser:" (`FALLBACK_STOP`).
 */
import type { ChatMessage, TextTokenizer } from '../io/tokenizer.ts';

/** Stop string of the plain transcript (models without a chat template). */
export const FALLBACK_STOP = '\nUser:';

/**
 * The token ids of the whole conversation, ending where the assistant's reply starts; `stops`: the stop strings the
 * format needs ([] with a chat template, [FALLBACK_STOP] for the transcript).
 */
export function chatPrompt(tok: TextTokenizer, messages: ChatMessage[], extra?: Record<string, unknown>): { ids: number[]; text: string; stops: string[] } {
  if (tok.chatTemplate) {
    const text = tok.applyChatTemplate(messages, { addGenerationPrompt: true, extra });
    return { ids: tok.encode(text, { addSpecialTokens: false }), text, stops: [] };
  }
  let text = '';
  for (const m of messages) {
    if (m.role === 'system') text += `${m.content}\n\n`;
    else text += `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}\n`;
  }
  text += 'Assistant:';
  return { ids: tok.encode(text), text, stops: [FALLBACK_STOP] };
}

/** The note said when a model without a chat template chats through the transcript (gptq chat, CausalLM.chat/stream). */
export function transcriptNote(model: string): string {
  return `${model} has no chat template; using a plain "User: …\\nAssistant: …" transcript (a reply ends at eos or "User:")`;
}
