package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// OAuth 2.0 error codes (RFC 6749 §5.2) used by the token endpoint.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidClient        = "invalid_client"
	CodeInvalidGrant         = "invalid_grant"
	CodeUnauthorizedClient   = "unauthorized_client"
	CodeUnsupportedGrantType = "unsupported_grant_type"
	CodeInvalidScope         = "invalid_scope"
)

// OAuthError is a token endpoint error response (RFC 6749 §5.2). Status is
// the HTTP status to answer with: 401 for invalid_client, 400 for the rest.
// Description says what was wrong and what was expected; it never contains
// the client assertion.
type OAuthError struct {
	Status      int
	Code        string
	Description string
	// ClientID is the registered client the assertion names, once known
	// (for the audit record; never sent).
	ClientID string
}

// invalidClientAnswer is the one answer to every invalid_client, whatever
// was wrong: an unauthenticated caller must not learn from the token
// endpoint which client ids exist, which key ids they registered or how
// (inline or by URL). The precise Description is for the server's log.
const invalidClientAnswer = "client authentication failed: the client_assertion must be a JWT signed (RS384, ES384 or RS512) with a key registered for its client, with iss = sub = the client_id, aud = this token endpoint, exp at most 5 minutes ahead and a new jti"

// Public is the error as a caller may be told it: every invalid_client
// has the same status and text (Description holds the detail to log).
func (e *OAuthError) Public() *OAuthError {
	if e.Code != CodeInvalidClient {
		return e
	}
	return &OAuthError{Status: http.StatusUnauthorized, Code: CodeInvalidClient, Description: invalidClientAnswer}
}

func (e *OAuthError) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// MarshalJSON gives the response body {"error": ..., "error_description": ...}.
func (e *OAuthError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.Code, e.Description})
}

func oauthErr(status int, code, format string, args ...any) *OAuthError {
	return &OAuthError{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

func invalidRequest(format string, args ...any) *OAuthError {
	return oauthErr(http.StatusBadRequest, CodeInvalidRequest, format, args...)
}

func invalidClient(format string, args ...any) *OAuthError {
	return oauthErr(http.StatusUnauthorized, CodeInvalidClient, format, args...)
}

func invalidGrant(format string, args ...any) *OAuthError {
	return oauthErr(http.StatusBadRequest, CodeInvalidGrant, format, args...)
}

func invalidScope(format string, args ...any) *OAuthError {
	return oauthErr(http.StatusBadRequest, CodeInvalidScope, format, args...)
}

func unsupportedGrantType(format string, args ...any) *OAuthError {
	return oauthErr(http.StatusBadRequest, CodeUnsupportedGrantType, format, args...)
}

var (
	// ErrNoToken means the request carries no bearer token: no Authorization
	// header, or one with another scheme. Answer 401 with
	// `WWW-Authenticate: Bearer` and no error code (RFC 6750 §3.1).
	ErrNoToken = errors.New("auth: no bearer token")
	// ErrBadToken means the bearer token is malformed, too long, unknown or
	// expired. Answer 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
	ErrBadToken = errors.New("auth: invalid bearer token")
	// ErrUnavailable is wrapped by errors from the ReplayCache or TokenStore
	// (and by a cancelled context): the request could not be decided, so
	// answer 503 with Retry-After rather than 401.
	ErrUnavailable = errors.New("auth: storage unavailable")
)

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

// quote quotes a caller-supplied value for an error description, cut short
// so a hostile value cannot flood responses or logs.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}
