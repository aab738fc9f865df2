// LoadTokenizerFromHfDir: reads a Hugging Face model directory's tokenizer.json,
// tokenizer_config.json and generation_config.json into a VocabSpec. JSON is checked shape by
// shape (no exceptions): a wrong shape is InvalidArgument naming the file and field.
#include <cctype>
#include <cerrno>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe.h"

namespace strata::tokenizer {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxFileBytes = 64ull << 20;  // Llama-3's tokenizer.json is ~9 MiB
constexpr int64_t kMaxVocab = 1 << 24;           // bounds the id space before allocating it

Status Bad(std::string_view file, std::string_view field, std::string_view what) {
  return Status::InvalidArgument(std::string(file) + ": " + std::string(field) + " " +
                                 std::string(what));
}

// The document of `dir`/`name`; nullopt when the file does not exist.
Result<std::optional<json>> ReadJson(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    if (errno == ENOENT) return std::optional<json>();
    return Status::IoError("open " + path, errno);
  }
  std::string text;
  char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, got);
    if (text.size() > kMaxFileBytes) {
      std::fclose(f);
      return Status::InvalidArgument(path + " is larger than " +
                                     std::to_string(kMaxFileBytes >> 20) + " MiB");
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return Status::IoError("read " + path, EIO);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(path + " is not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument(path + " is not a JSON object");
  return std::optional<json>(std::move(j));
}

const json* Field(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// Never throws: the parser already refused invalid UTF-8, and replace covers the rest.
std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string TypeOf(const json* j) {
  if (j == nullptr) return "";
  const json* t = Field(*j, "type");
  return t != nullptr && t->is_string() ? t->get<std::string>() : "";
}

// `j` flattened: a Sequence's members (pretokenizers / normalizers / processors), else itself.
std::vector<const json*> Members(const json* j, const char* list_key) {
  std::vector<const json*> out;
  if (j == nullptr) return out;
  if (TypeOf(j) == "Sequence") {
    if (const json* list = Field(*j, list_key); list != nullptr && list->is_array())
      for (const json& m : *list) out.push_back(&m);
  } else {
    out.push_back(j);
  }
  return out;
}

Result<int64_t> ReadId(const json& v, std::string_view file, std::string_view field) {
  if (!v.is_number_integer()) return Bad(file, field, "is not an integer");
  if (v.is_number_unsigned() ? v.get<uint64_t>() >= static_cast<uint64_t>(kMaxVocab)
                             : (v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxVocab))
    return Bad(file, field, "= " + Dump(v) + " is not an id in [0, 2^24)");
  return v.get<int64_t>();
}

// A token named in tokenizer_config.json: a string or {"content": string}; nullopt for null.
Result<std::optional<std::string>> TokenText(const json& cfg, const char* key) {
  const json* v = Field(cfg, key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->is_string()) return std::optional<std::string>(v->get<std::string>());
  if (const json* c = Field(*v, "content"); c != nullptr && c->is_string())
    return std::optional<std::string>(c->get<std::string>());
  return Bad("tokenizer_config.json", key, "is neither a string nor {\"content\": string}");
}

bool IsBytePiece(const std::string& p) {
  return p.size() == 6 && p.starts_with("<0x") && p.back() == '>' && std::isxdigit(p[3]) &&
         std::isxdigit(p[4]);
}

Status ReadMerges(const json& model, VocabSpec* spec) {
  static constexpr std::string_view kFile = "tokenizer.json";
  const json* merges = Field(model, "merges");
  if (merges == nullptr) return Status::Ok();
  if (!merges->is_array()) return Bad(kFile, "model.merges", "is not an array");
  spec->merges.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const json& m = (*merges)[i];
    const std::string field = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t sp = s.find(' ', 1);
      if (s.empty() || sp == std::string::npos || sp + 1 >= s.size())
        return Bad(kFile, field, "= \"" + s + "\" is not of the form \"a b\"");
      spec->merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      spec->merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return Bad(kFile, field, "is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  spec->merges_field = "tokenizer.json: model.merges";
  return Status::Ok();
}

// The GPT-2 pre-tokenizer a ByteLevel tokenizer.json describes.
Status ReadByteLevel(const json& tok, VocabSpec* spec) {
  static constexpr std::string_view kFile = "tokenizer.json";
  std::vector<const json*> pre = Members(Field(tok, "pre_tokenizer"), "pretokenizers");
  std::string shape;
  for (const json* p : pre) shape += (shape.empty() ? "" : ", ") + TypeOf(p);
  auto use_regex = [](const json* p) {
    const json* u = Field(*p, "use_regex");
    return u == nullptr || !u->is_boolean() || u->get<bool>();
  };
  for (const json* p : pre) {
    const json* aps = Field(*p, "add_prefix_space");
    if (TypeOf(p) == "ByteLevel" && aps != nullptr && aps->is_boolean() && aps->get<bool>())
      return Status::NotSupported("tokenizer.json: ByteLevel add_prefix_space = true");
  }
  if (pre.size() == 1 && TypeOf(pre[0]) == "ByteLevel" && use_regex(pre[0])) {
    spec->pre = PreTokenizer::kGpt2;
  } else if (pre.size() == 2 && TypeOf(pre[0]) == "Split" && TypeOf(pre[1]) == "ByteLevel" &&
             !use_regex(pre[1])) {
    const json* pattern = Field(*pre[0], "pattern");
    const json* regex = pattern != nullptr ? Field(*pattern, "Regex") : nullptr;
    if (regex == nullptr || !regex->is_string())
      return Bad(kFile, "pre_tokenizer.pretokenizers[0].pattern", "has no Regex string");
    const std::string& r = regex->get_ref<const std::string&>();
    std::optional<PreTokenizer> known = PreTokenizerFromRegex(r);
    if (!known)
      return Status::NotSupported("tokenizer.json: pre-tokenizer pattern '" + r +
                                  "' is not one of the known splitters (gpt-2, llama-bpe, qwen2)");
    spec->pre = *known;
  } else if (pre.size() == 2 && TypeOf(pre[0]) == "Digits" && TypeOf(pre[1]) == "ByteLevel" &&
             use_regex(pre[1])) {
    const json* ind = Field(*pre[0], "individual_digits");
    if (ind == nullptr || !ind->is_boolean() || !ind->get<bool>())
      return Status::NotSupported("tokenizer.json: Digits pre-tokenizer without individual_digits");
    spec->pre = PreTokenizer::kSmolLm;
  } else {
    return Status::NotSupported("tokenizer.json: pre_tokenizer [" + shape +
                                "] is not a known byte-level split");
  }
  const json* norm = Field(tok, "normalizer");
  if (norm != nullptr) {
    if (TypeOf(norm) != "NFC")
      return Status::NotSupported("tokenizer.json: normalizer '" + TypeOf(norm) +
                                  "' of a byte-level model (only NFC is supported)");
    spec->nfc = true;
  }
  return Status::Ok();
}

// Whether a SentencePiece-style tokenizer.json prepends "▁" to the text.
Result<bool> ReadSpaceHandling(const json& tok) {
  bool prefix = false;
  for (const json* n : Members(Field(tok, "normalizer"), "normalizers")) {
    const std::string type = TypeOf(n);
    if (type == "Prepend") {
      prefix = true;
    } else if (type != "Replace" && type != "NFC" && type != "NFKC") {
      return Status::NotSupported("tokenizer.json: normalizer '" + type +
                                  "' of a SentencePiece-style model");
    }
  }
  for (const json* p : Members(Field(tok, "pre_tokenizer"), "pretokenizers")) {
    if (TypeOf(p) != "Metaspace")
      return Status::NotSupported("tokenizer.json: pre_tokenizer '" + TypeOf(p) +
                                  "' of a SentencePiece-style model");
    const json* scheme = Field(*p, "prepend_scheme");
    const json* aps = Field(*p, "add_prefix_space");
    if (scheme != nullptr && scheme->is_string())
      prefix = scheme->get<std::string>() != "never";
    else if (aps != nullptr && aps->is_boolean())
      prefix = aps->get<bool>();
    else
      prefix = true;
  }
  return prefix;
}

bool MentionsSpaceMark(const json& tok) {
  for (const char* key : {"normalizer", "pre_tokenizer", "decoder"}) {
    const json* j = Field(tok, key);
    if (j != nullptr && Dump(*j).find("\xE2\x96\x81") != std::string::npos) return true;
  }
  return false;
}

// Whether the post-processor's single-sequence template starts with the special token `bos`.
std::optional<std::string> TemplateBos(const json& tok) {
  for (const json* p : Members(Field(tok, "post_processor"), "processors")) {
    if (TypeOf(p) != "TemplateProcessing") continue;
    const json* single = Field(*p, "single");
    if (single == nullptr || !single->is_array() || single->empty()) continue;
    const json* st = Field((*single)[0], "SpecialToken");
    const json* id = st != nullptr ? Field(*st, "id") : nullptr;
    if (id != nullptr && id->is_string()) return id->get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> LoadTokenizerFromHfDir(const std::string& dir) {
  static constexpr std::string_view kFile = "tokenizer.json";
  STRATA_ASSIGN_OR_RETURN(std::optional<json> tok_doc, ReadJson(dir, "tokenizer.json"));
  if (!tok_doc) return Status::NotFound(dir + "/tokenizer.json does not exist");
  const json& tok = *tok_doc;

  const json* model = Field(tok, "model");
  if (model == nullptr || !model->is_object()) return Bad(kFile, "model", "is not an object");
  const json* mtype = Field(*model, "type");
  if (mtype != nullptr && !mtype->is_string()) return Bad(kFile, "model.type", "is not a string");
  const std::string type = mtype != nullptr ? mtype->get<std::string>() : "BPE";
  if (type != "BPE")
    return Status::NotSupported("tokenizer.json: model.type '" + type +
                                "' is not supported (BPE only)");

  // Pieces: model.vocab, then added_tokens (which may add ids or retype existing ones).
  const json* vocab = Field(*model, "vocab");
  if (vocab == nullptr || !vocab->is_object())
    return Bad(kFile, "model.vocab", "is not an object of piece -> id");
  struct Entry {
    std::string piece;
    TokenType type = TokenType::kNormal;
    bool set = false;
  };
  std::vector<Entry> entries;
  auto place = [&](int64_t id, std::string piece, TokenType t, std::string_view field,
                   bool may_replace) -> Status {
    if (static_cast<size_t>(id) >= entries.size()) entries.resize(static_cast<size_t>(id) + 1);
    Entry& e = entries[static_cast<size_t>(id)];
    if (e.set && !may_replace)
      return Bad(kFile, field, "gives id " + std::to_string(id) + " to a second piece");
    e = {std::move(piece), t, true};
    return Status::Ok();
  };
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const std::string field = "model.vocab[\"" + it.key() + "\"]";
    STRATA_ASSIGN_OR_RETURN(int64_t id, ReadId(it.value(), kFile, field));
    STRATA_RETURN_IF_ERROR(place(id, it.key(), TokenType::kNormal, field, false));
  }
  if (const json* added = Field(tok, "added_tokens")) {
    if (!added->is_array()) return Bad(kFile, "added_tokens", "is not an array");
    for (size_t i = 0; i < added->size(); ++i) {
      const json& a = (*added)[i];
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      const json* id = Field(a, "id");
      const json* content = Field(a, "content");
      if (id == nullptr) return Bad(kFile, field + ".id", "is missing");
      if (content == nullptr || !content->is_string())
        return Bad(kFile, field + ".content", "is not a string");
      STRATA_ASSIGN_OR_RETURN(int64_t tid, ReadId(*id, kFile, field + ".id"));
      const json* special = Field(a, "special");
      const bool is_special = special != nullptr && special->is_boolean() && special->get<bool>();
      STRATA_RETURN_IF_ERROR(place(tid, content->get<std::string>(),
                                   is_special ? TokenType::kControl : TokenType::kUserDefined,
                                   field, true));
    }
  }
  if (entries.empty()) return Bad(kFile, "model.vocab", "is empty");

  VocabSpec spec;
  spec.pieces.reserve(entries.size());
  spec.types.reserve(entries.size());
  for (Entry& e : entries) {
    spec.pieces.push_back(std::move(e.piece));
    spec.types.push_back(e.set ? e.type : TokenType::kUnused);  // holes stay unused and empty
  }
  std::unordered_map<std::string_view, TokenId> index;
  for (size_t i = 0; i < spec.pieces.size(); ++i)
    if (!spec.pieces[i].empty()) index[spec.pieces[i]] = static_cast<TokenId>(i);
  auto find = [&](const std::string& p) -> std::optional<TokenId> {
    auto it = index.find(p);
    return it == index.end() ? std::nullopt : std::optional<TokenId>(it->second);
  };

  STRATA_RETURN_IF_ERROR(ReadMerges(*model, &spec));
  if (const json* unk = Field(*model, "unk_token")) {
    if (!unk->is_string()) return Bad(kFile, "model.unk_token", "is not a string");
    spec.unk = find(unk->get<std::string>());
    if (!spec.unk) return Bad(kFile, "model.unk_token", "is not in the vocabulary");
    spec.types[*spec.unk] = TokenType::kUnknown;
  }
  const json* bf = Field(*model, "byte_fallback");
  spec.byte_fallback = bf != nullptr && bf->is_boolean() && bf->get<bool>();
  const json* im = Field(*model, "ignore_merges");
  spec.ignore_merges = im != nullptr && im->is_boolean() && im->get<bool>();

  const bool byte_level =
      Field(tok, "pre_tokenizer") != nullptr &&
      Dump(*Field(tok, "pre_tokenizer")).find("\"ByteLevel\"") != std::string::npos;
  const bool spm = !byte_level && (spec.byte_fallback || MentionsSpaceMark(tok));
  if (byte_level) {
    STRATA_RETURN_IF_ERROR(ReadByteLevel(tok, &spec));
  } else if (spm) {
    STRATA_ASSIGN_OR_RETURN(spec.add_space_prefix, ReadSpaceHandling(tok));
    for (size_t i = 0; i < spec.pieces.size(); ++i)
      if (spec.types[i] == TokenType::kNormal && IsBytePiece(spec.pieces[i]))
        spec.types[i] = TokenType::kByte;
  } else {
    return Status::NotSupported(
        "tokenizer.json: a BPE model with neither a ByteLevel pre-tokenizer nor "
        "SentencePiece-style \"\xE2\x96\x81\" spaces");
  }

  // tokenizer_config.json: BOS/EOS by name, add_bos_token, the chat template.
  STRATA_ASSIGN_OR_RETURN(std::optional<json> cfg, ReadJson(dir, "tokenizer_config.json"));
  std::optional<bool> add_bos;
  if (cfg) {
    static constexpr std::string_view kCfg = "tokenizer_config.json";
    for (const char* key : {"bos_token", "eos_token"}) {
      STRATA_ASSIGN_OR_RETURN(std::optional<std::string> text, TokenText(*cfg, key));
      if (!text) continue;
      std::optional<TokenId> id = find(*text);
      if (!id) return Bad(kCfg, key, "'" + *text + "' is not in the vocabulary");
      (std::string_view(key) == "bos_token" ? spec.bos : spec.eos) = id;
    }
    if (const json* v = Field(*cfg, "add_bos_token")) {
      if (!v->is_boolean()) return Bad(kCfg, "add_bos_token", "is not a boolean");
      add_bos = v->get<bool>();
    }
    if (const json* ct = Field(*cfg, "chat_template")) {
      if (ct->is_string()) {
        spec.chat_template = ct->get<std::string>();
      } else if (ct->is_array()) {
        // Named templates: "default" if there is one, else the first.
        for (const json& t : *ct) {
          const json* name = Field(t, "name");
          const json* text = Field(t, "template");
          if (text == nullptr || !text->is_string())
            return Bad(kCfg, "chat_template[].template", "is not a string");
          const bool is_default = name != nullptr && name->is_string() && *name == "default";
          if (spec.chat_template.empty() || is_default)
            spec.chat_template = text->get<std::string>();
          if (is_default) break;
        }
      } else {
        return Bad(kCfg, "chat_template", "is neither a string nor a list of named templates");
      }
    }
  }
  if (!add_bos) {
    // No explicit setting: a post-processor that puts a special token first adds BOS.
    if (std::optional<std::string> first = TemplateBos(tok)) {
      if (std::optional<TokenId> id = find(*first)) {
        if (!spec.bos) spec.bos = id;
        add_bos = spec.bos == id;
      }
    }
  }
  spec.add_bos = add_bos.value_or(false);

  // generation_config.json: the ids that end generation.
  STRATA_ASSIGN_OR_RETURN(std::optional<json> gen, ReadJson(dir, "generation_config.json"));
  if (gen) {
    static constexpr std::string_view kGen = "generation_config.json";
    if (const json* eos = Field(*gen, "eos_token_id")) {
      std::vector<const json*> ids;
      if (eos->is_array())
        for (const json& e : *eos) ids.push_back(&e);
      else
        ids.push_back(eos);
      for (size_t i = 0; i < ids.size(); ++i) {
        STRATA_ASSIGN_OR_RETURN(int64_t id, ReadId(*ids[i], kGen, "eos_token_id"));
        if (static_cast<size_t>(id) >= spec.pieces.size())
          return Bad(kGen, "eos_token_id",
                     "= " + std::to_string(id) + " is outside the vocabulary of " +
                         std::to_string(spec.pieces.size()) + " tokens");
        spec.eog.push_back(static_cast<TokenId>(id));
        if (!spec.eos) spec.eos = static_cast<TokenId>(id);
      }
    }
  }
  return byte_level ? MakeGpt2Tokenizer(std::move(spec)) : MakeSpmTokenizer(std::move(spec));
}

}  // namespace strata::tokenizer
