#include "coordinator/web/web_http.h"

#include <httplib.h>

#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "coordinator/web/web_assets.h"  // generated from assets/ (cmake/embed_text.cmake)
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

using nlohmann::json;

void SecurityHeaders(httplib::Response& res) {
  // Only the page's own files run: no inline script, no other origin.
  res.set_header("Content-Security-Policy",
                 "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                 "connect-src 'self'; base-uri 'none'; form-action 'none'; "
                 "frame-ancestors 'none'");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("Cache-Control", "no-store");
}

void SendJson(httplib::Response& res, int code, const json& body) {
  SecurityHeaders(res);
  res.status = code;
  // error_handler_t::replace: a tail with invalid UTF-8 is shown with U+FFFD
  // instead of failing the whole page.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json; charset=utf-8");
}

void SendResult(httplib::Response& res, const absl::StatusOr<json>& result) {
  if (result.ok()) {
    SendJson(res, 200, *result);
    return;
  }
  SendJson(res, HttpCodeFor(result.status()),
           {{"error", std::string(result.status().message())},
            {"code", absl::StatusCodeToString(result.status().code())}});
}

void SendAsset(httplib::Response& res, const char* body, const char* type) {
  SecurityHeaders(res);
  res.set_content(body, type);
}

// An integer query parameter; `fallback` when absent.
absl::StatusOr<int64_t> IntParam(const httplib::Request& req, const char* name, int64_t fallback) {
  if (!req.has_param(name)) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(req.get_param_value(name), &value)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be an integer"));
  }
  return value;
}

absl::StatusOr<PageQuery> PageParams(const httplib::Request& req) {
  PageQuery page;
  auto offset = IntParam(req, "offset", 0);
  if (!offset.ok()) return offset.status();
  auto limit = IntParam(req, "limit", kDefaultPageSize);
  if (!limit.ok()) return limit.status();
  page.offset = *offset;
  page.limit = *limit;
  return page;
}

// Runs `action` when the request may change state; else answers the refusal.
void GuardedAction(const WebRouteOptions& options, const httplib::Request& req,
                   httplib::Response& res,
                   const std::function<absl::StatusOr<json>(const json&)>& action) {
  if (!options.authorize_action) {
    SendJson(
        res, 403,
        {{"error", "actions are off: start the coordinator with --admin-token-file to allow them"},
         {"code", "PERMISSION_DENIED"}});
    return;
  }
  // Held here: the check reads a view of it.
  const std::string value = req.get_header_value("Authorization");
  std::optional<std::string_view> header;
  if (req.has_header("Authorization")) header = value;
  if (absl::Status st = options.authorize_action(header); !st.ok()) {
    SendResult(res, st);
    return;
  }
  // A JSON body: an HTML form on another site cannot send one without a
  // CORS preflight, which this server never answers.
  if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
    SendResult(res, absl::InvalidArgumentError("the body must be application/json"));
    return;
  }
  json body = json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    SendResult(res, absl::InvalidArgumentError("the body must be a JSON object"));
    return;
  }
  SendResult(res, action(body));
}

}  // namespace

int HttpCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void AddWebRoutes(httplib::Server& server, WebApi& api, WebRouteOptions options) {
  auto opts = std::make_shared<const WebRouteOptions>(std::move(options));
  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    SendAsset(res, web_assets::kIndexHtml, "text/html; charset=utf-8");
  });
  server.Get("/app.js", [](const httplib::Request&, httplib::Response& res) {
    SendAsset(res, web_assets::kAppJs, "text/javascript; charset=utf-8");
  });
  server.Get("/app.css", [](const httplib::Request&, httplib::Response& res) {
    SendAsset(res, web_assets::kAppCss, "text/css; charset=utf-8");
  });
  server.Get("/api/overview", [&api](const httplib::Request&, httplib::Response& res) {
    SendResult(res, api.Overview());
  });
  server.Get("/api/runs", [&api](const httplib::Request& req, httplib::Response& res) {
    auto page = PageParams(req);
    if (!page.ok()) return SendResult(res, page.status());
    RunsQuery q;
    q.page = *page;
    q.by_family = req.get_param_value("group") == "family";
    q.contains = req.get_param_value("q");
    q.state = req.get_param_value("state");
    if (req.has_param("sort")) q.sort = req.get_param_value("sort");
    q.descending = req.get_param_value("order") == "desc";
    SendResult(res, api.Runs(q));
  });
  server.Get("/api/fingerprints", [&api](const httplib::Request& req, httplib::Response& res) {
    auto page = PageParams(req);
    if (!page.ok()) return SendResult(res, page.status());
    SendResult(res, api.Fingerprints(*page));
  });
  server.Get("/api/workers", [&api, opts](const httplib::Request&, httplib::Response& res) {
    SendResult(res, api.Workers(!opts->serving || opts->serving()));
  });
  server.Get("/api/phase", [&api](const httplib::Request& req, httplib::Response& res) {
    auto page = PageParams(req);
    if (!page.ok()) return SendResult(res, page.status());
    SendResult(res, api.Phase(req.get_param_value("run"), req.get_param_value("phase"), *page));
  });
  // Actions: POST only. A GET is answered 405 and changes nothing.
  for (const char* path : {"/api/unblock", "/api/resume"}) {
    server.Get(path, [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "POST");
      SendJson(res, 405, {{"error", "use POST with the admin token"}, {"code", "METHOD"}});
    });
  }
  server.Post("/api/unblock", [&api, opts](const httplib::Request& req, httplib::Response& res) {
    GuardedAction(*opts, req, res, [&api](const json& body) -> absl::StatusOr<json> {
      if (!body.contains("fingerprint") || !body["fingerprint"].is_string()) {
        return absl::InvalidArgumentError("fingerprint (a string) is required");
      }
      auto result = api.Unblock(body["fingerprint"].get<std::string>());
      if (result.ok()) spdlog::info("web view: unblocked {}", (*result)["unblocked"].dump());
      return result;
    });
  });
  server.Post("/api/resume", [&api, opts](const httplib::Request& req, httplib::Response& res) {
    GuardedAction(*opts, req, res, [&api](const json&) -> absl::StatusOr<json> {
      auto result = api.Resume();
      if (result.ok()) spdlog::info("web view: resumed leasing");
      return result;
    });
  });
}

}  // namespace sluice
