// ChatTemplate: renders chat messages into the prompt text a model was trained on. Known
// families are recognised from the model's own template (GGUF tokenizer.chat_template, HF
// tokenizer_config.json chat_template) by its markers, never by executing Jinja; anything
// else falls back to a documented plain format (docs/tokenizers.md).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace strata::tokenizer {

struct ChatMessage {
  std::string role;  // "system", "developer", "user", "assistant", "tool"
  std::string content;
};

enum class ChatFamily : uint8_t {
  kPlain,    // "<|role|>\ncontent\n" per message, then "<|assistant|>\n" (the synthetic presets)
  kLlama2,   // "[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]"
  kLlama3,   // "<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>"
  kChatMl,   // "<|im_start|>role\ncontent<|im_end|>\n" (Qwen2, SmolLM2)
  kMistral,  // "[INST] ... [/INST]" without <<SYS>> (system prepended to the first user turn)
};

// "plain", "llama2", "llama3", "chatml", "mistral".
std::string_view ChatFamilyName(ChatFamily family);

class ChatTemplate {
 public:
  // The family of a Jinja template text, by its markers ("<|start_header_id|>" -> llama3,
  // "<|im_start|>" -> chatml, "<<SYS>>" -> llama2, "[INST]" -> mistral); kPlain for an empty
  // or unknown template.
  static ChatFamily Detect(std::string_view jinja);

  // `tokenizer` supplies the BOS/EOS text the family writes (e.g. "<s>", "<|begin_of_text|>").
  // The rendered text holds the BOS piece exactly where the family's template writes
  // bos_token (llama2: before every "[INST]"; llama3, mistral: once at the start; chatml and
  // plain: never) and only when tokenizer.add_bos() is true. Encode it with
  // tokenizer.Encode(text, /*parse_special=*/true), not EncodePrompt: no further BOS.
  ChatTemplate(ChatFamily family, const Tokenizer& tokenizer);
  // Detect(jinja), plus what the template text adds by itself: for chatml, the default
  // system message a Qwen2 / SmolLM2 template writes when the chat has none (the literal text
  // of "<|im_start|>system\n...<|im_end|>" in the template).
  static ChatTemplate FromJinja(std::string_view jinja, const Tokenizer& tokenizer);

  ChatFamily family() const { return family_; }
  // The prompt for `messages`, ending where the assistant's reply begins. In the model
  // families "developer" is rendered as "system"; llama3 and chatml write other roles as
  // given, llama2 and mistral (which know only user and assistant turns) treat "tool" as a
  // user turn, and a family without a system role prepends it to the first user turn. kPlain
  // writes every role as given, as the synthetic presets always did. Contents are trimmed
  // where the family's template trims them (llama2, llama3).
  std::string Apply(const std::vector<ChatMessage>& messages) const;
  // The default system message (chatml only), "" for none.
  const std::string& default_system() const { return default_system_; }

 private:
  ChatFamily family_;
  std::string bos_text_;  // the BOS piece when the tokenizer adds one, else ""
  std::string eos_text_;
  std::string default_system_;
};

}  // namespace strata::tokenizer
