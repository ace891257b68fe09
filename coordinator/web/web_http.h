// The web view's HTTP routes on the coordinator's HTTP server (next to
// /metrics and /healthz): the embedded page (assets/) and the JSON endpoints
// of docs/web.md. Thin: each handler parses the request, calls WebApi and
// maps the status to an HTTP code (InvalidArgument 400, NotFound 404,
// FailedPrecondition 409, Unauthenticated 401, PermissionDenied 403,
// Unavailable 503, else 500).
//
// Actions (POST /api/unblock, POST /api/resume) change state only on POST
// with `Authorization: Bearer <admin token>` and a JSON body: a cross-site
// form cannot send either, and no GET changes anything. Every response
// carries a Content-Security-Policy that allows only the page's own script
// and style, and `nosniff`.
//
// Ownership: `api` must outlive the server. Thread-safety: the handlers run
// on the HTTP server's threads; WebApi is thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "coordinator/web/web_api.h"

namespace httplib {
class Server;
}

namespace sluice {

struct WebRouteOptions {
  // Checks an action's `Authorization` header value (nullopt: none sent).
  // OK lets it through; Unauthenticated and PermissionDenied refuse it. Null:
  // actions are refused (403), the view stays read-only.
  std::function<absl::Status(std::optional<std::string_view>)> authorize_action;
  // The coordinator's health, shown on the workers page; null: true.
  std::function<bool()> serving;
};

void AddWebRoutes(httplib::Server& server, WebApi& api, WebRouteOptions options);

// The HTTP code for a status (see above).
int HttpCodeFor(const absl::Status& status);

}  // namespace sluice
