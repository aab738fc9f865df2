// ChatTemplate: the known families' prompt formats, written out by hand to match the
// models' own Jinja templates (docs/tokenizers.md lists the exact strings).
#include "tokenizer/chat_template.h"

namespace strata::tokenizer {
namespace {

std::string_view Trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

std::string_view RoleOf(const ChatMessage& m) {
  return m.role == "developer" ? std::string_view("system") : std::string_view(m.role);
}

// llama2 and mistral: the system text (all system messages, joined) and the rest.
std::string CollectSystem(const std::vector<ChatMessage>& messages,
                          std::vector<const ChatMessage*>* turns) {
  std::string system;
  for (const ChatMessage& m : messages) {
    if (RoleOf(m) == "system") {
      if (!system.empty()) system += "\n\n";
      system += m.content;
    } else {
      turns->push_back(&m);
    }
  }
  return system;
}

// The literal default system message of a chatml template, if it writes one.
std::string ChatMlDefaultSystem(std::string_view jinja) {
  constexpr std::string_view kStart = "<|im_start|>system";
  constexpr std::string_view kEnd = "<|im_end|>";
  for (size_t at = jinja.find(kStart); at != std::string_view::npos;
       at = jinja.find(kStart, at + 1)) {
    std::string_view rest = jinja.substr(at + kStart.size());
    // The newline is a real one (JSON-decoded "\n") or the Jinja escape "\n".
    if (rest.starts_with("\n"))
      rest.remove_prefix(1);
    else if (rest.starts_with("\\n"))
      rest.remove_prefix(2);
    else
      continue;
    const size_t end = rest.find(kEnd);
    if (end == std::string_view::npos || end == 0) continue;
    const std::string_view text = rest.substr(0, end);
    // Only literal text: anything that looks like Jinja or a string join is a variable part.
    if (text.find_first_of("{}'\"+\\") != std::string_view::npos) continue;
    return std::string(text);
  }
  return {};
}

}  // namespace

std::string_view ChatFamilyName(ChatFamily family) {
  switch (family) {
    case ChatFamily::kPlain:
      return "plain";
    case ChatFamily::kLlama2:
      return "llama2";
    case ChatFamily::kLlama3:
      return "llama3";
    case ChatFamily::kChatMl:
      return "chatml";
    case ChatFamily::kMistral:
      return "mistral";
  }
  return "plain";
}

ChatFamily ChatTemplate::Detect(std::string_view jinja) {
  // Most specific markers first: a Llama-2 template also contains "[INST]".
  if (jinja.find("<|start_header_id|>") != std::string_view::npos) return ChatFamily::kLlama3;
  if (jinja.find("<|im_start|>") != std::string_view::npos) return ChatFamily::kChatMl;
  if (jinja.find("<<SYS>>") != std::string_view::npos) return ChatFamily::kLlama2;
  if (jinja.find("[INST]") != std::string_view::npos) return ChatFamily::kMistral;
  return ChatFamily::kPlain;
}

ChatTemplate::ChatTemplate(ChatFamily family, const Tokenizer& tokenizer) : family_(family) {
  if (tokenizer.add_bos() && tokenizer.bos()) bos_text_ = tokenizer.piece(*tokenizer.bos());
  if (tokenizer.eos()) eos_text_ = tokenizer.piece(*tokenizer.eos());
}

ChatTemplate ChatTemplate::FromJinja(std::string_view jinja, const Tokenizer& tokenizer) {
  ChatTemplate t(Detect(jinja), tokenizer);
  if (t.family_ == ChatFamily::kChatMl) t.default_system_ = ChatMlDefaultSystem(jinja);
  return t;
}

std::string ChatTemplate::Apply(const std::vector<ChatMessage>& messages) const {
  std::string out;
  switch (family_) {
    case ChatFamily::kPlain:
      for (const ChatMessage& m : messages) out += "<|" + m.role + "|>\n" + m.content + "\n";
      out += "<|assistant|>\n";
      break;

    case ChatFamily::kLlama3:
      out += bos_text_;
      for (const ChatMessage& m : messages) {
        out += "<|start_header_id|>";
        out += RoleOf(m);
        out += "<|end_header_id|>\n\n";
        out += Trim(m.content);
        out += "<|eot_id|>";
      }
      out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;

    case ChatFamily::kChatMl:
      if (!default_system_.empty() && (messages.empty() || RoleOf(messages[0]) != "system"))
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      for (const ChatMessage& m : messages) {
        out += "<|im_start|>";
        out += RoleOf(m);
        out += "\n" + m.content + "<|im_end|>\n";
      }
      out += "<|im_start|>assistant\n";
      break;

    case ChatFamily::kLlama2: {
      // Meta's template: BOS "[INST] " + strip(sys block + user) + " [/INST]" per user turn,
      // " " + strip(reply) + " " + EOS per assistant turn.
      std::vector<const ChatMessage*> turns;
      const std::string system = CollectSystem(messages, &turns);
      bool first_user = true;
      for (const ChatMessage* m : turns) {
        if (m->role == "assistant") {
          out += " ";
          out += Trim(m->content);
          out += " " + eos_text_;
          continue;
        }
        std::string content = m->content;
        if (first_user && !system.empty())
          content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
        first_user = false;
        out += bos_text_ + "[INST] ";
        out += Trim(content);
        out += " [/INST]";
      }
      break;
    }

    case ChatFamily::kMistral: {
      // Mistral-Instruct: BOS once, "[INST] " + user + " [/INST]" + reply + EOS; the system
      // text joins the first user turn.
      std::vector<const ChatMessage*> turns;
      const std::string system = CollectSystem(messages, &turns);
      out += bos_text_;
      bool first_user = true;
      for (const ChatMessage* m : turns) {
        if (m->role == "assistant") {
          out += m->content + eos_text_;
          continue;
        }
        out += "[INST] ";
        if (first_user && !system.empty()) out += system + "\n\n";
        first_user = false;
        out += m->content + " [/INST]";
      }
      break;
    }
  }
  return out;
}

}  // namespace strata::tokenizer
