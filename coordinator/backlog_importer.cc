#include "coordinator/backlog_importer.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "nlohmann/json.hpp"

namespace sluice {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

// Debian 12's abseil is built with its own absl::string_view (not an alias of
// std::string_view), so std::string_view values are converted explicitly.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view Trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  const size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

bool EndsWithIgnoreCase(std::string_view text, std::string_view suffix) {
  if (text.size() < suffix.size()) return false;
  text = text.substr(text.size() - suffix.size());
  for (size_t i = 0; i < suffix.size(); ++i) {
    auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(text[i]) != lower(suffix[i])) return false;
  }
  return true;
}

// One physical line of the file, without its "\n" or "\r\n" terminator.
struct Line {
  size_t number = 0;  // 1-based
  std::string_view text;
};

std::vector<Line> SplitLines(std::string_view content) {
  std::vector<Line> lines;
  size_t number = 1;
  while (!content.empty()) {
    size_t end = content.find('\n');
    std::string_view text = content.substr(0, end);
    content = end == std::string_view::npos ? std::string_view() : content.substr(end + 1);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    lines.push_back(Line{number++, text});
  }
  return lines;
}

// 0 when `text` is valid UTF-8, else the 1-based position of the first byte
// of the first invalid sequence. Rejects overlong forms, surrogates and code
// points above U+10FFFF, as RFC 3629 does.
size_t FirstInvalidUtf8Byte(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;  // overlong
      if (b0 == 0xED) hi = 0x9F;  // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;  // overlong
      if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i + 1;
    }
    if (i + len > text.size()) return i + 1;
    const auto b1 = static_cast<unsigned char>(text[i + 1]);
    if (b1 < lo || b1 > hi) return i + 1;
    for (size_t k = 2; k < len; ++k) {
      const auto bk = static_cast<unsigned char>(text[i + k]);
      if (bk < 0x80 || bk > 0xBF) return i + 1;
    }
    i += len;
  }
  return 0;
}

bool IsBlank(std::string_view text) {
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') return false;
  }
  return true;
}

std::string Quoted(std::string_view field) { return absl::StrCat("field \"", Sv(field), "\""); }

// A backlog row's "state" (e.g. QUEUED from another system's export) would
// otherwise become metadata and the phase be leased anyway: refused, since
// sluice keeps each phase's state itself.
constexpr std::string_view kStateField = "state";
std::string StateFieldRejected() {
  return "field \"state\" is not supported: sluice keeps each phase's state itself (drop the "
         "field, and leave out the rows that must not run)";
}

// Builds PhaseSpecs from already split fields and checks what both formats share.
class Collector {
 public:
  explicit Collector(std::string_view name) : name_(name) {}

  absl::Status Error(size_t line, std::string_view reason) const {
    return absl::InvalidArgumentError(absl::StrCat(Sv(name_), ":", line, ": ", Sv(reason)));
  }

  // Length and encoding checks every physical line passes before it is parsed.
  absl::Status CheckLine(const Line& line) const {
    if (line.text.size() > kMaxBacklogLineBytes) {
      return Error(line.number, absl::StrCat("line is ", line.text.size(), " bytes long (at most ",
                                             kMaxBacklogLineBytes, ")"));
    }
    if (size_t bad = FirstInvalidUtf8Byte(line.text); bad != 0) {
      return Error(line.number, absl::StrCat("invalid UTF-8 at byte ", bad));
    }
    return absl::OkStatus();
  }

  absl::Status CheckId(size_t line, std::string_view field, std::string_view value) const {
    absl::Status status = ValidateId(Quoted(field), value);
    if (!status.ok()) return Error(line, std::string(status.message()));
    return absl::OkStatus();
  }

  // Adds `spec` unless its (run_id, phase_id) was seen before.
  absl::Status Add(size_t line, PhaseSpec spec) {
    auto [it, inserted] = first_line_.emplace(PhaseKey{spec.run_id, spec.phase_id}, line);
    if (!inserted) {
      return Error(line, absl::StrCat("duplicate phase run_id=", spec.run_id, " phase_id=",
                                      spec.phase_id, " (first at line ", it->second, ")"));
    }
    phases_.push_back(std::move(spec));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<PhaseSpec>> Finish(std::string_view why_empty) {
    if (phases_.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Sv(name_), ": no phases (", Sv(why_empty), ")"));
    }
    return std::move(phases_);
  }

 private:
  std::string_view name_;
  std::map<PhaseKey, size_t> first_line_;
  std::vector<PhaseSpec> phases_;
};

// ---------------------------------------------------------------------------
// JSONL

std::string JsonTypeName(const Json& value) {
  if (value.is_number_float()) return "number";
  if (value.is_number()) return "integer";
  return value.type_name();
}

std::string ShortDump(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// nlohmann's messages read "[json.exception.parse_error.101] parse error at
// line 1, column 5: syntax error ..."; its line/column count within the one
// line we handed it, so keep the column and drop the rest of the preamble.
std::string JsonParseReason(const Json::parse_error& e) {
  std::string_view what = e.what();
  std::string_view detail = what;
  if (size_t pos = what.find("column "); pos != std::string_view::npos) {
    if (size_t colon = what.find(": ", pos); colon != std::string_view::npos) {
      detail = what.substr(colon + 2);
    }
  } else if (size_t bracket = what.find("] "); bracket != std::string_view::npos) {
    detail = what.substr(bracket + 2);
  }
  return absl::StrCat("invalid JSON at column ", e.byte, ": ", Sv(detail));
}

absl::StatusOr<int64_t> JsonInteger(const Collector& c, size_t line, std::string_view field,
                                    const Json& value) {
  if (value.is_number_integer() && !value.is_number_unsigned()) {
    return value.get<int64_t>();
  }
  if (value.is_number_unsigned()) {
    const auto u = value.get<uint64_t>();
    if (u <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(u);
    return c.Error(line, absl::StrCat(Quoted(field), " is out of range (", u, ")"));
  }
  return c.Error(line, absl::StrCat(Quoted(field), " must be an integer (got ", JsonTypeName(value),
                                    " ", ShortDump(value), ")"));
}

absl::Status ParseJsonLine(Collector& c, const Line& line) {
  Json row;
  try {
    row = Json::parse(line.text);
  } catch (const Json::parse_error& e) {
    return c.Error(line.number, JsonParseReason(e));
  } catch (const Json::exception& e) {
    // Found by backlog_parser_fuzz: a number too large for a double
    // ("7777…e7777") throws out_of_range, not parse_error.
    return c.Error(line.number, absl::StrCat("invalid JSON: ", e.what()));
  }
  if (!row.is_object()) {
    return c.Error(line.number, absl::StrCat("expected a JSON object, got ", JsonTypeName(row)));
  }

  PhaseSpec spec;
  Json metadata = Json::object();
  for (std::string_view required : {"run_id", "phase_id"}) {
    auto it = row.find(required);
    if (it == row.end()) {
      return c.Error(line.number, absl::StrCat(Quoted(required), " missing"));
    }
    if (!it->is_string()) {
      return c.Error(line.number, absl::StrCat(Quoted(required), " must be a string (got ",
                                               JsonTypeName(*it), ")"));
    }
    const auto& value = it->get_ref<const std::string&>();
    if (absl::Status s = c.CheckId(line.number, required, value); !s.ok()) return s;
    (required == "run_id" ? spec.run_id : spec.phase_id) = value;
  }

  for (const auto& [key, value] : row.items()) {
    if (key == "run_id" || key == "phase_id") continue;
    if (key == kStateField) return c.Error(line.number, StateFieldRejected());
    // An explicit null in an optional field means "not given".
    if (key == "phase_index" || key == "priority") {
      if (value.is_null()) continue;
      absl::StatusOr<int64_t> number = JsonInteger(c, line.number, key, value);
      if (!number.ok()) return number.status();
      if (key == "phase_index") {
        if (*number < 0) {
          return c.Error(line.number,
                         absl::StrCat(Quoted(key), " must not be negative (got ", *number, ")"));
        }
        spec.phase_index = *number;
      } else {
        spec.priority = *number;
      }
    } else if (key == "last_error") {
      if (value.is_null()) continue;
      if (!value.is_string()) {
        return c.Error(line.number, absl::StrCat(Quoted(key), " must be a string (got ",
                                                 JsonTypeName(value), ")"));
      }
      spec.last_error = value.get<std::string>();
    } else if (key == "labels") {
      if (value.is_null()) continue;
      if (!value.is_array()) {
        return c.Error(line.number,
                       absl::StrCat(Quoted(key), " must be an array of identifiers (got ",
                                    JsonTypeName(value), ")"));
      }
      for (size_t i = 0; i < value.size(); ++i) {
        const Json& label = value[i];
        if (!label.is_string()) {
          return c.Error(line.number,
                         absl::StrCat(Quoted(key), " element ", i + 1, " must be a string (got ",
                                      JsonTypeName(label), ")"));
        }
        const auto& text = label.get_ref<const std::string&>();
        if (absl::Status s = c.CheckId(line.number, "labels", text); !s.ok()) return s;
        spec.labels.push_back(text);
      }
    } else {
      metadata[key] = value;
    }
  }
  spec.metadata_json = metadata.dump();
  return c.Add(line.number, std::move(spec));
}

absl::StatusOr<std::vector<PhaseSpec>> ParseJsonl(std::string_view name,
                                                  const std::vector<Line>& lines) {
  Collector c(name);
  for (const Line& line : lines) {
    if (absl::Status s = c.CheckLine(line); !s.ok()) return s;
    if (IsBlank(line.text)) continue;
    if (absl::Status s = ParseJsonLine(c, line); !s.ok()) return s;
  }
  return c.Finish("file is empty");
}

// ---------------------------------------------------------------------------
// CSV (RFC 4180, with CRLF or LF line ends)

struct CsvRecord {
  size_t line = 0;  // where the record starts
  std::vector<std::string> fields;
};

// Reads the record that starts at lines[*next], consuming further physical
// lines while a quoted field spans them, and advances *next past it.
absl::StatusOr<CsvRecord> ReadCsvRecord(const Collector& c, const std::vector<Line>& lines,
                                        size_t* next) {
  CsvRecord record;
  record.line = lines[*next].number;
  std::string field;
  bool in_quotes = false;
  bool after_closing_quote = false;  // the current field was quoted and has ended
  while (true) {
    if (*next >= lines.size()) {
      return c.Error(record.line, "unterminated quoted field (the record starts on this line)");
    }
    const Line& line = lines[(*next)++];
    if (absl::Status s = c.CheckLine(line); !s.ok()) return s;
    std::string_view text = line.text;
    for (size_t i = 0; i < text.size(); ++i) {
      const char ch = text[i];
      if (in_quotes) {
        if (ch != '"') {
          field.push_back(ch);
        } else if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          in_quotes = false;
          after_closing_quote = true;
        }
      } else if (ch == ',') {
        record.fields.push_back(std::move(field));
        field.clear();
        after_closing_quote = false;
      } else if (after_closing_quote) {
        return c.Error(line.number, absl::StrCat("unexpected character '", std::string(1, ch),
                                                 "' after the closing quote of field ",
                                                 record.fields.size() + 1));
      } else if (ch == '"') {
        if (!field.empty()) {
          return c.Error(line.number,
                         absl::StrCat("a '\"' inside unquoted field ", record.fields.size() + 1,
                                      " (quote the whole field and double the '\"')"));
        }
        in_quotes = true;
      } else {
        field.push_back(ch);
      }
    }
    if (!in_quotes) break;
    field.push_back('\n');  // a line break inside a quoted field is part of it
  }
  record.fields.push_back(std::move(field));
  return record;
}

absl::StatusOr<int64_t> CsvInteger(const Collector& c, size_t line, std::string_view field,
                                   std::string_view text) {
  std::string_view trimmed = Trim(text);
  std::string_view digits = trimmed;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  int64_t value = 0;
  const char* end = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), end, value);
  if (ec == std::errc::result_out_of_range) {
    return c.Error(line, absl::StrCat(Quoted(field), " is out of range (", Sv(trimmed), ")"));
  }
  if (ec != std::errc() || ptr != end || digits.empty()) {
    return c.Error(line,
                   absl::StrCat(Quoted(field), " must be an integer (got \"", Sv(text), "\")"));
  }
  return value;
}

absl::StatusOr<std::vector<PhaseSpec>> ParseCsv(std::string_view name,
                                                const std::vector<Line>& lines) {
  Collector c(name);
  size_t next = 0;

  // The header is the first non-blank record.
  std::optional<CsvRecord> header;
  while (next < lines.size() && !header) {
    if (absl::Status s = c.CheckLine(lines[next]); !s.ok()) return s;
    if (IsBlank(lines[next].text)) {
      ++next;
      continue;
    }
    absl::StatusOr<CsvRecord> record = ReadCsvRecord(c, lines, &next);
    if (!record.ok()) return record.status();
    header = std::move(*record);
  }
  if (!header) return c.Finish("file is empty");

  std::vector<std::string> columns;
  std::map<std::string, size_t, std::less<>> index;
  for (size_t i = 0; i < header->fields.size(); ++i) {
    std::string column(Trim(header->fields[i]));
    if (column.empty()) {
      return c.Error(header->line, absl::StrCat("header column ", i + 1, " has no name"));
    }
    if (!index.emplace(column, i).second) {
      return c.Error(header->line, absl::StrCat("header names column \"", column, "\" twice"));
    }
    columns.push_back(std::move(column));
  }
  if (index.contains(kStateField)) return c.Error(header->line, StateFieldRejected());
  for (std::string_view required : {"run_id", "phase_id"}) {
    if (!index.contains(required)) {
      return c.Error(header->line, absl::StrCat("header has no \"", Sv(required), "\" column"));
    }
  }

  while (next < lines.size()) {
    if (absl::Status s = c.CheckLine(lines[next]); !s.ok()) return s;
    if (IsBlank(lines[next].text)) {
      ++next;
      continue;
    }
    absl::StatusOr<CsvRecord> record = ReadCsvRecord(c, lines, &next);
    if (!record.ok()) return record.status();
    const size_t at = record->line;
    if (record->fields.size() != columns.size()) {
      return c.Error(at, absl::StrCat("row has ", record->fields.size(), " fields, the header has ",
                                      columns.size()));
    }

    PhaseSpec spec;
    Json metadata = Json::object();
    for (size_t i = 0; i < columns.size(); ++i) {
      const std::string& column = columns[i];
      std::string& value = record->fields[i];
      if (column == "run_id" || column == "phase_id") {
        if (absl::Status s = c.CheckId(at, column, value); !s.ok()) return s;
        (column == "run_id" ? spec.run_id : spec.phase_id) = std::move(value);
      } else if (column == "phase_index" || column == "priority") {
        if (IsBlank(value)) continue;  // an empty cell means "not given"
        absl::StatusOr<int64_t> number = CsvInteger(c, at, column, value);
        if (!number.ok()) return number.status();
        if (column == "phase_index") {
          if (*number < 0) {
            return c.Error(
                at, absl::StrCat(Quoted(column), " must not be negative (got ", *number, ")"));
          }
          spec.phase_index = *number;
        } else {
          spec.priority = *number;
        }
      } else if (column == "last_error") {
        spec.last_error = std::move(value);
      } else if (column == "labels") {
        std::string_view rest = value;
        while (!rest.empty()) {
          const size_t semicolon = rest.find(';');
          std::string_view label = Trim(rest.substr(0, semicolon));
          rest =
              semicolon == std::string_view::npos ? std::string_view() : rest.substr(semicolon + 1);
          if (label.empty()) continue;
          if (absl::Status s = c.CheckId(at, "labels", label); !s.ok()) return s;
          spec.labels.emplace_back(label);
        }
      } else if (!value.empty()) {
        // CSV cannot tell an empty value from a missing one; keep only values.
        metadata[column] = std::move(value);
      }
    }
    spec.metadata_json = metadata.dump();
    if (absl::Status s = c.Add(at, std::move(spec)); !s.ok()) return s;
  }
  return c.Finish("only a header row");
}

bool LooksLikeJsonl(std::string_view name, std::string_view content) {
  if (EndsWithIgnoreCase(name, ".jsonl") || EndsWithIgnoreCase(name, ".json")) {
    return true;
  }
  for (char ch : content) {
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
    return ch == '{';
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<PhaseSpec>> ParseBacklog(std::string_view name, std::string_view content,
                                                    BacklogFormat format) {
  if (content.starts_with(kUtf8Bom)) content.remove_prefix(kUtf8Bom.size());
  if (format == BacklogFormat::kAuto) {
    format = LooksLikeJsonl(name, content) ? BacklogFormat::kJsonl : BacklogFormat::kCsv;
  }
  const std::vector<Line> lines = SplitLines(content);
  return format == BacklogFormat::kJsonl ? ParseJsonl(name, lines) : ParseCsv(name, lines);
}

absl::StatusOr<std::vector<PhaseSpec>> ReadBacklogFile(const std::string& path,
                                                       BacklogFormat format) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("backlog file ", path, " is a directory"));
  }
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int err = errno;
    std::string message = absl::StrCat("cannot open backlog file ", path, ": ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    return absl::InvalidArgumentError(message);
  }
  std::string content;
  char buffer[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) content.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int err = errno;
  std::fclose(file);
  if (failed) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read backlog file ", path, ": ", std::strerror(err)));
  }
  return ParseBacklog(path, content, format);
}

}  // namespace sluice
