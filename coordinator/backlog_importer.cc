#include "coordinator/backlog_importer.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "coordinator/backlog_input.h"
#include "nlohmann/json.hpp"

namespace sluice {
namespace {

using Json = nlohmann::json;

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

using Line = BacklogLine;

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
  explicit Collector(std::string name) : name_(std::move(name)) {}

  absl::Status Error(size_t line, std::string_view reason) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ":", line, ": ", Sv(reason)));
  }

  // Length and encoding checks every physical line passes before it is parsed.
  absl::Status CheckLine(const Line& line) const {
    if (line.length > kMaxBacklogLineBytes) {
      return Error(line.number, absl::StrCat("line is ", line.length, " bytes long (at most ",
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

  // Adds `spec` to *out unless its (run_id, phase_id) was seen before.
  absl::Status Add(size_t line, PhaseSpec spec) {
    if (std::optional<size_t> first = keys_.Insert(spec.run_id, spec.phase_id, line)) {
      return Error(line, absl::StrCat("duplicate phase run_id=", spec.run_id, " phase_id=",
                                      spec.phase_id, " (first at line ", *first, ")"));
    }
    ++count_;
    out_->push_back(std::move(spec));
    return absl::OkStatus();
  }

  void set_output(std::vector<PhaseSpec>* out) { out_ = out; }

  absl::Status Finish(std::string_view why_empty) const {
    if (count_ == 0) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": no phases (", Sv(why_empty), ")"));
    }
    return absl::OkStatus();
  }

 private:
  std::string name_;
  BacklogKeyIndex keys_;
  size_t count_ = 0;
  std::vector<PhaseSpec>* out_ = nullptr;
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

// ---------------------------------------------------------------------------
// CSV (RFC 4180, with CRLF or LF line ends)

struct CsvRecord {
  size_t line = 0;  // where the record starts
  std::vector<std::string> fields;
};

// Reads the record that starts at the source's next line, consuming further
// physical lines while a quoted field spans them.
absl::StatusOr<CsvRecord> ReadCsvRecord(const Collector& c, BacklogLineSource& source) {
  CsvRecord record;
  std::string field;
  bool in_quotes = false;
  bool after_closing_quote = false;  // the current field was quoted and has ended
  while (true) {
    absl::StatusOr<std::optional<Line>> next = source.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) {
      return c.Error(record.line, "unterminated quoted field (the record starts on this line)");
    }
    const Line& line = **next;
    if (record.line == 0) record.line = line.number;
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

// The column names of a CSV header record, checked.
absl::StatusOr<std::vector<std::string>> ParseCsvHeader(const Collector& c,
                                                        const CsvRecord& header) {
  std::vector<std::string> columns;
  std::map<std::string, size_t, std::less<>> index;
  for (size_t i = 0; i < header.fields.size(); ++i) {
    std::string column(Trim(header.fields[i]));
    if (column.empty()) {
      return c.Error(header.line, absl::StrCat("header column ", i + 1, " has no name"));
    }
    if (!index.emplace(column, i).second) {
      return c.Error(header.line, absl::StrCat("header names column \"", column, "\" twice"));
    }
    columns.push_back(std::move(column));
  }
  if (index.contains(kStateField)) return c.Error(header.line, StateFieldRejected());
  for (std::string_view required : {"run_id", "phase_id"}) {
    if (!index.contains(required)) {
      return c.Error(header.line, absl::StrCat("header has no \"", Sv(required), "\" column"));
    }
  }
  return columns;
}

// One CSV data record as a phase, added to `c`.
absl::Status ParseCsvRow(Collector& c, const std::vector<std::string>& columns, CsvRecord& record) {
  const size_t at = record.line;
  if (record.fields.size() != columns.size()) {
    return c.Error(at, absl::StrCat("row has ", record.fields.size(), " fields, the header has ",
                                    columns.size()));
  }

  PhaseSpec spec;
  Json metadata = Json::object();
  for (size_t i = 0; i < columns.size(); ++i) {
    const std::string& column = columns[i];
    std::string& value = record.fields[i];
    if (column == "run_id" || column == "phase_id") {
      if (absl::Status s = c.CheckId(at, column, value); !s.ok()) return s;
      (column == "run_id" ? spec.run_id : spec.phase_id) = std::move(value);
    } else if (column == "phase_index" || column == "priority") {
      if (IsBlank(value)) continue;  // an empty cell means "not given"
      absl::StatusOr<int64_t> number = CsvInteger(c, at, column, value);
      if (!number.ok()) return number.status();
      if (column == "phase_index") {
        if (*number < 0) {
          return c.Error(at,
                         absl::StrCat(Quoted(column), " must not be negative (got ", *number, ")"));
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
  return c.Add(at, std::move(spec));
}

// A backlog is JSONL when its name says so, else when its first character
// other than a space, tab or line break is '{'.
bool NameSaysJsonl(std::string_view name) {
  return EndsWithIgnoreCase(name, ".jsonl") || EndsWithIgnoreCase(name, ".json");
}

}  // namespace

class BacklogReader::Impl {
 public:
  Impl(std::string name, std::unique_ptr<BacklogLineSource> source, BacklogFormat format)
      : c_(name), source_(std::move(source)), format_(format) {
    if (format_ == BacklogFormat::kAuto && NameSaysJsonl(name)) format_ = BacklogFormat::kJsonl;
  }

  absl::Status Next(size_t max_phases, std::vector<PhaseSpec>* chunk) {
    chunk->clear();
    if (!error_.ok() || done_) return error_;
    c_.set_output(chunk);
    error_ = Fill(std::max<size_t>(max_phases, 1), chunk);
    if (!error_.ok()) chunk->clear();
    return error_;
  }

 private:
  absl::Status Fill(size_t max_phases, std::vector<PhaseSpec>* chunk) {
    if (format_ == BacklogFormat::kAuto) {
      if (absl::Status s = DetectFormat(); !s.ok()) return s;
    }
    while (chunk->size() < max_phases) {
      absl::StatusOr<std::optional<Line>> next = source_->Next();
      if (!next.ok()) return next.status();
      if (!next->has_value()) {
        done_ = true;
        return c_.Finish(format_ == BacklogFormat::kCsv && columns_ ? "only a header row"
                                                                    : "file is empty");
      }
      const Line& line = **next;
      if (absl::Status s = c_.CheckLine(line); !s.ok()) return s;
      if (IsBlank(line.text)) continue;
      if (format_ == BacklogFormat::kJsonl) {
        if (absl::Status s = ParseJsonLine(c_, line); !s.ok()) return s;
        continue;
      }
      source_->Unread();
      absl::StatusOr<CsvRecord> record = ReadCsvRecord(c_, *source_);
      if (!record.ok()) return record.status();
      if (!columns_) {  // the header is the first non-blank record
        absl::StatusOr<std::vector<std::string>> columns = ParseCsvHeader(c_, *record);
        if (!columns.ok()) return columns.status();
        columns_ = std::move(*columns);
        continue;
      }
      if (absl::Status s = ParseCsvRow(c_, *columns_, *record); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // Decides from the first character other than ' ', '\t', '\r' and '\n';
  // the lines before it are blank in both formats.
  absl::Status DetectFormat() {
    format_ = BacklogFormat::kCsv;  // also for a file of blank lines
    while (true) {
      absl::StatusOr<std::optional<Line>> next = source_->Next();
      if (!next.ok()) return next.status();
      if (!next->has_value()) return absl::OkStatus();
      const Line& line = **next;
      if (absl::Status s = c_.CheckLine(line); !s.ok()) return s;
      const size_t first = line.text.find_first_not_of(" \t\r");
      if (first == std::string_view::npos) continue;
      if (line.text[first] == '{') format_ = BacklogFormat::kJsonl;
      source_->Unread();
      return absl::OkStatus();
    }
  }

  Collector c_;
  std::unique_ptr<BacklogLineSource> source_;
  BacklogFormat format_;
  std::optional<std::vector<std::string>> columns_;  // CSV, once the header is read
  absl::Status error_;
  bool done_ = false;
};

BacklogReader::BacklogReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BacklogReader::~BacklogReader() = default;

absl::StatusOr<std::unique_ptr<BacklogReader>> BacklogReader::Open(const std::string& path,
                                                                   BacklogFormat format) {
  absl::StatusOr<std::unique_ptr<BacklogLineSource>> source =
      BacklogLineSource::OpenFile(path, kMaxBacklogLineBytes);
  if (!source.ok()) return source.status();
  return std::unique_ptr<BacklogReader>(
      new BacklogReader(std::make_unique<Impl>(path, std::move(*source), format)));
}

std::unique_ptr<BacklogReader> BacklogReader::FromString(std::string_view name,
                                                         std::string_view content,
                                                         BacklogFormat format) {
  return std::unique_ptr<BacklogReader>(new BacklogReader(std::make_unique<Impl>(
      std::string(name), BacklogLineSource::FromString(content, kMaxBacklogLineBytes), format)));
}

absl::Status BacklogReader::Next(size_t max_phases, std::vector<PhaseSpec>* chunk) {
  return impl_->Next(max_phases, chunk);
}

namespace {

absl::StatusOr<std::vector<PhaseSpec>> ReadAll(BacklogReader& reader) {
  std::vector<PhaseSpec> all;
  std::vector<PhaseSpec> chunk;
  while (true) {
    if (absl::Status s = reader.Next(4096, &chunk); !s.ok()) return s;
    if (chunk.empty()) return all;
    std::move(chunk.begin(), chunk.end(), std::back_inserter(all));
  }
}

}  // namespace

absl::StatusOr<std::vector<PhaseSpec>> ParseBacklog(std::string_view name, std::string_view content,
                                                    BacklogFormat format) {
  return ReadAll(*BacklogReader::FromString(name, content, format));
}

absl::StatusOr<std::vector<PhaseSpec>> ReadBacklogFile(const std::string& path,
                                                       BacklogFormat format) {
  absl::StatusOr<std::unique_ptr<BacklogReader>> reader = BacklogReader::Open(path, format);
  if (!reader.ok()) return reader.status();
  return ReadAll(**reader);
}

}  // namespace sluice
