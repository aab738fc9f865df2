// Tests of the chat families' exact prompt strings (as the models' own templates render them)
// and of family detection.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "tokenizer/test_vocabs.h"

namespace strata::tokenizer {
namespace {

const std::vector<ChatMessage> kChat = {
    {"system", "Be brief."},
    {"user", "Hi"},
    {"assistant", "Hello!"},
    {"user", "Bye"},
};

std::unique_ptr<Tokenizer> Spm(bool add_bos = true) {
  VocabSpec spec = testing::SpmSpec();
  spec.add_bos = add_bos;
  return std::move(*MakeSpmTokenizer(std::move(spec)));
}

TEST(ChatTemplate, Detect) {
  EXPECT_EQ(ChatTemplate::Detect(""), ChatFamily::kPlain);
  EXPECT_EQ(ChatTemplate::Detect("{{ x }}"), ChatFamily::kPlain);
  EXPECT_EQ(ChatTemplate::Detect("{{ '<|start_header_id|>' + role }}"), ChatFamily::kLlama3);
  EXPECT_EQ(ChatTemplate::Detect("{{ '<|im_start|>' }}"), ChatFamily::kChatMl);
  EXPECT_EQ(ChatTemplate::Detect("[INST] <<SYS>>\\n"), ChatFamily::kLlama2);
  EXPECT_EQ(ChatTemplate::Detect("{{ '[INST] ' + m }}"), ChatFamily::kMistral);
  EXPECT_EQ(ChatFamilyName(ChatFamily::kChatMl), "chatml");
  EXPECT_EQ(ChatFamilyName(ChatFamily::kLlama2), "llama2");
}

TEST(ChatTemplate, Plain) {
  auto t = MakeByteTokenizer();
  ChatTemplate ct(ChatFamily::kPlain, *t);
  EXPECT_EQ(ct.Apply({{"system", "S"}, {"developer", "D"}, {"user", "U"}}),
            "<|system|>\nS\n<|developer|>\nD\n<|user|>\nU\n<|assistant|>\n");
}

TEST(ChatTemplate, Llama2) {
  auto t = Spm();
  ChatTemplate ct(ChatFamily::kLlama2, *t);
  EXPECT_EQ(
      ct.Apply(kChat),
      "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(ct.Apply({{"user", "  Hi \n"}}), "<s>[INST] Hi [/INST]");
  // A model that adds no BOS: none in the text either.
  auto nb = Spm(false);
  EXPECT_EQ(ChatTemplate(ChatFamily::kLlama2, *nb).Apply({{"user", "Hi"}}), "[INST] Hi [/INST]");
}

TEST(ChatTemplate, Mistral) {
  auto t = Spm();
  ChatTemplate ct(ChatFamily::kMistral, *t);
  EXPECT_EQ(ct.Apply(kChat), "<s>[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] Bye [/INST]");
  EXPECT_EQ(ct.Apply({{"user", "Hi"}}), "<s>[INST] Hi [/INST]");
}

TEST(ChatTemplate, Llama3) {
  auto t = std::move(*MakeGpt2Tokenizer(testing::Gpt2Spec()));
  ChatTemplate ct(ChatFamily::kLlama3, *t);
  EXPECT_EQ(ct.Apply({{"developer", " Be brief. "}, {"user", "Hi"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, ChatMlWithTheTemplatesDefaultSystem) {
  VocabSpec spec = testing::Gpt2Spec(PreTokenizer::kQwen2);
  spec.add_bos = false;
  auto t = std::move(*MakeGpt2Tokenizer(std::move(spec)));
  ChatTemplate plain(ChatFamily::kChatMl, *t);
  EXPECT_EQ(plain.Apply({{"user", "Hi"}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // Qwen2's template (JSON-decoded: a real newline inside the Jinja string).
  const std::string qwen2 =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
      "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
      "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
      "{% endfor %}";
  ChatTemplate q = ChatTemplate::FromJinja(qwen2, *t);
  EXPECT_EQ(q.family(), ChatFamily::kChatMl);
  EXPECT_EQ(q.default_system(), "You are a helpful assistant.");
  EXPECT_EQ(q.Apply({{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(q.Apply({{"system", "S"}, {"user", "Hi"}}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Qwen2.5 writes the escape "\\n" inside its Jinja strings.
  const std::string qwen25 =
      "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a "
      "helpful assistant.<|im_end|>\\n' }}{%- endif %}"
      "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}";
  EXPECT_EQ(ChatTemplate::FromJinja(qwen25, *t).default_system(),
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  // A template whose system text is only a variable has no default.
  EXPECT_EQ(ChatTemplate::FromJinja("{{ '<|im_start|>system\\n' + m + '<|im_end|>' }}", *t)
                .default_system(),
            "");
}

}  // namespace
}  // namespace strata::tokenizer
