package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"syscall"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/oauth"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store"
)

// Sentinel errors of the HTTP layer.
var (
	// ErrUnauthorized: no bearer token, or one that matches no configured hash (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound: nothing of that name for this identity (404). Things of other owners
	// are reported the same way, so their existence is never revealed.
	ErrNotFound = errors.New("not found")
	// ErrInvalidRequest: a malformed body, parameter or path (400).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrInvalidAuth is wrapped by NewAuth's error for bad auth.tokens entries.
	ErrInvalidAuth = errors.New("invalid auth configuration")
	// ErrNoTokens is wrapped by RequireTokensFor's error.
	ErrNoTokens = errors.New("no auth tokens configured")
	// ErrForbiddenHost: a Host header that names neither this service nor an entry of
	// http.allowedHosts, as a DNS-rebinding page sends (403).
	ErrForbiddenHost = errors.New("forbidden host")
	// ErrForbiddenOrigin: an Origin header of another site not in http.allowedOrigins (403).
	ErrForbiddenOrigin = errors.New("forbidden origin")
	// ErrUnsupportedMediaType: a PUT or POST body that is not application/json (415).
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrRateLimited: the caller's token bucket is empty (429 with Retry-After).
	ErrRateLimited = errors.New("rate limited")
)

// Error codes of the API's error body. They are stable: clients switch on them.
const (
	CodeUnauthorized        = "unauthorized"
	CodeNotFound            = "not_found"
	CodeConflict            = "conflict"
	CodeNotFailed           = "not_failed"
	CodeFileSourced         = "file_sourced"
	CodeInvalidConfig       = "invalid_config"
	CodeInvalidRequest      = "invalid_request"
	CodeBodyTooLarge        = "body_too_large"
	CodeRefused             = "refused"
	CodeUpstreamUnavailable = "upstream_unavailable"
	CodeUnavailable         = "unavailable"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeForbiddenHost       = "forbidden_host"
	CodeForbiddenOrigin     = "forbidden_origin"
	CodeUnsupportedMedia    = "unsupported_media_type"
	CodeRateLimited         = "rate_limited"
	CodeNoKey               = "no_encryption_key"
	CodeInsufficientStorage = "insufficient_storage"
	CodeInternal            = "internal"
	CodeTooManyRequests     = "too_many_requests"
	CodePreconditionFailed  = "precondition_failed"
)

// ErrorBody is the JSON of every error response: {"error": {...}}.
type ErrorBody struct {
	Error APIError `json:"error"`
}

// APIError is the error object: a stable code, a message for humans, and for some
// codes the details a client can act on.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Problems lists every problem of an invalid_config error.
	Problems []domain.Problem `json:"problems,omitempty"`
	// Rule names the policy rule of a refused (or breaker-open) connection.
	Rule domain.Rule `json:"rule,omitempty"`
}

// errorStatus is the one place that maps errors to HTTP status codes and API error
// codes. Errors it does not know are 500 "internal" and their text is not shown.
func errorStatus(err error) (int, APIError) {
	var (
		verr  *domain.ValidationError
		maxb  *http.MaxBytesError
		extra APIError
	)
	if rule, ok := refusedRule(err); ok {
		extra.Rule = rule
	}
	switch {
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, APIError{Code: CodeUnauthorized, Message: "a valid bearer token is required"}
	case errors.Is(err, ErrForbiddenHost):
		return http.StatusForbidden, APIError{Code: CodeForbiddenHost, Message: err.Error()}
	case errors.Is(err, ErrForbiddenOrigin):
		return http.StatusForbidden, APIError{Code: CodeForbiddenOrigin, Message: err.Error()}
	case errors.Is(err, ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType, APIError{Code: CodeUnsupportedMedia, Message: err.Error()}
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests, APIError{Code: CodeRateLimited, Message: err.Error()}
	case errors.Is(err, credentials.ErrNoKey):
		return http.StatusServiceUnavailable, APIError{Code: CodeNoKey, Message: "cannot store a secret: " + err.Error()}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT): // a full disk: 507
		return http.StatusInsufficientStorage, APIError{Code: CodeInsufficientStorage,
			Message: "the event log cannot be written: no space left on the data directory's disk"}
	case errors.As(err, &maxb):
		return http.StatusRequestEntityTooLarge, APIError{Code: CodeBodyTooLarge, Message: err.Error()}
	case errors.As(err, &verr):
		return http.StatusBadRequest, APIError{Code: CodeInvalidConfig, Message: err.Error(), Problems: verr.Problems}
	case errors.Is(err, registry.ErrBlockedURL):
		var serr *domain.ServerError
		name := ""
		if errors.As(err, &serr) {
			name = serr.Name
		}
		return http.StatusBadRequest, APIError{Code: CodeInvalidConfig, Message: err.Error(),
			Problems: []domain.Problem{{Server: name, Field: "url", Reason: err.Error()}}}
	case errors.Is(err, ErrInvalidRequest), errors.Is(err, audit.ErrInvalidArgument):
		return http.StatusBadRequest, APIError{Code: CodeInvalidRequest, Message: err.Error()}
	case errors.Is(err, ErrNotFound), errors.Is(err, domain.ErrServerNotFound), isConnNotFound(err):
		return http.StatusNotFound, APIError{Code: CodeNotFound, Message: err.Error(), Rule: extra.Rule}
	case errors.Is(err, registry.ErrFileSourced):
		return http.StatusConflict, APIError{Code: CodeFileSourced, Message: err.Error()}
	case errors.Is(err, domain.ErrPreconditionFailed):
		return http.StatusPreconditionFailed, APIError{Code: CodePreconditionFailed, Message: err.Error()}
	case errors.Is(err, domain.ErrNotFailed):
		return http.StatusConflict, APIError{Code: CodeNotFailed, Message: err.Error()}
	case errors.Is(err, domain.ErrServerExists), errors.Is(err, registry.ErrConflict), errors.Is(err, store.ErrVersionConflict):
		return http.StatusConflict, APIError{Code: CodeConflict, Message: err.Error()}
	case isConnUnavailable(err):
		return http.StatusBadGateway, APIError{Code: CodeUpstreamUnavailable, Message: err.Error(), Rule: extra.Rule}
	case isConnRefused(err):
		return http.StatusForbidden, APIError{Code: CodeRefused, Message: err.Error(), Rule: extra.Rule}
	case errors.Is(err, registry.ErrClosed), errors.Is(err, store.ErrClosed), isConnClosed(err):
		return http.StatusServiceUnavailable, APIError{Code: CodeUnavailable, Message: "the service is shutting down"}
	case errors.Is(err, oauth.ErrTooManyFlows):
		return http.StatusTooManyRequests, APIError{Code: CodeTooManyRequests, Message: err.Error()}
	case errors.Is(err, oauth.ErrNoTarget):
		return http.StatusBadRequest, APIError{Code: CodeInvalidRequest, Message: err.Error()}
	case errors.Is(err, oauth.ErrNoRegistration), errors.Is(err, oauth.ErrDiscovery), errors.Is(err, oauth.ErrNoPKCE),
		errors.Is(err, oauth.ErrIssuerMismatch), errors.Is(err, oauth.ErrResourceMismatch), errors.Is(err, oauth.ErrTransient):
		return http.StatusBadGateway, APIError{Code: CodeUpstreamUnavailable, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, APIError{Code: CodeUpstreamUnavailable, Message: err.Error()}
	}
	return http.StatusInternalServerError, APIError{Code: CodeInternal, Message: "internal error"}
}

// writeError answers with the status and error body for err; 5xx errors are logged.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, body := errorStatus(err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcpes"`)
	}
	if status >= 500 && log != nil && !errors.Is(err, context.Canceled) {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, ErrorBody{Error: body})
}

// writeJSON writes v as the JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
