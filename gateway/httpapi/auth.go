package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auth"
	"github.com/signpost-health/signpost/gateway/intake"
)

const (
	callerKey = "signpost.caller"
	grantKey  = "signpost.grant"
	// maxTokenForm bounds POST /auth/token: an assertion is at most 16 KiB.
	maxTokenForm = 32 << 10
)

// smartConfiguration serves SMART discovery, at the server root and under
// the FHIR base, where SMART clients look for it.
func (a *API) smartConfiguration(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, "application/json", a.smartConfig)
}

// scopesSupported are the SMART v2 scopes of what the API serves, read from
// its CapabilityStatement so that discovery advertises no more and no less:
// per resource type, c for create, r for read and vread, u for update and
// patch, d for delete, s for search; and c and u for every type a BaRS
// message stores beside its referral (gateway.SupportingTypes), which a
// sender needs though the type has no such REST interaction.
func scopesSupported(metadata []byte) []string {
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type        string `json:"type"`
				Interaction []struct {
					Code string `json:"code"`
				} `json:"interaction"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(metadata, &cs); err != nil || len(cs.Rest) == 0 {
		panic("httpapi: reading the CapabilityStatement Signpost built") // built by capabilityStatement, always valid
	}
	letter := map[string]byte{"create": 'c', "read": 'r', "vread": 'r', "update": 'u', "patch": 'u', "delete": 'd', "search-type": 's'}
	permits := map[string]map[byte]bool{}
	var types []string
	allow := func(typ string, l byte) {
		if permits[typ] == nil {
			permits[typ] = map[byte]bool{}
			types = append(types, typ)
		}
		permits[typ][l] = true
	}
	for _, r := range cs.Rest[0].Resource {
		for _, i := range r.Interaction {
			if l, ok := letter[i.Code]; ok {
				allow(r.Type, l)
			}
		}
	}
	for _, typ := range gateway.SupportingTypes() {
		allow(typ, 'c')
		allow(typ, 'u')
	}
	scopes := make([]string, 0, len(types))
	for _, typ := range types {
		var ls []byte
		for _, l := range []byte("cruds") {
			if permits[typ][l] {
				ls = append(ls, l)
			}
		}
		scopes = append(scopes, "system/"+typ+"."+string(ls))
	}
	return scopes
}

// token is the OAuth token endpoint (client_credentials, private_key_jwt).
func (a *API) token(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	if mt := c.ContentType(); mt != "application/x-www-form-urlencoded" {
		c.JSON(http.StatusBadRequest, gin.H{"error": auth.CodeInvalidRequest, "error_description": "the token request must be application/x-www-form-urlencoded"})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxTokenForm)
	if err := c.Request.ParseForm(); err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": auth.CodeInvalidRequest, "error_description": "the token request body could not be read (at most 32 KiB)"})
		return
	}
	// Only the body: parameters in the URL end up in access logs.
	res, err := a.auth.Token(c.Request.Context(), c.Request.PostForm)
	var oe *auth.OAuthError
	switch {
	case err == nil:
		c.Set(auditClientKey, res.ClientID)
		c.JSON(http.StatusOK, res)
	case errors.As(err, &oe):
		c.Set(auditClientKey, oe.ClientID)
		public := oe.Public()
		if public != oe {
			// The caller gets one answer for every invalid_client; what
			// was wrong is for the operator (never the assertion itself).
			a.log.Warn("token request refused", "client_id", oe.ClientID, "reason", oe.Description)
		}
		body, _ := json.Marshal(public)
		c.Data(public.Status, "application/json", body)
	default:
		a.log.Error("token endpoint: storage unavailable", "error", err)
		c.Header("Retry-After", retryAfterSeconds)
		c.JSON(http.StatusServiceUnavailable, gin.H{"error": "temporarily_unavailable", "error_description": "try again shortly"})
	}
}

// authenticate establishes the caller of a FHIR request from its bearer
// token. Without an auth server (auth.mode none, loopback only) the caller
// comes from Options.Caller.
func (a *API) authenticate(c *gin.Context) {
	if a.auth == nil {
		if a.caller != nil {
			caller, err := a.caller(c.Request)
			if err != nil {
				a.fail(c, err)
				return
			}
			c.Set(callerKey, caller)
		}
		return
	}
	header := c.GetHeader("Authorization")
	if header == "" {
		// No credentials at all: counted by address before any work.
		if a.limitByAddress(c); c.IsAborted() {
			return
		}
	}
	g, err := a.auth.Authenticate(c.Request.Context(), header)
	if errors.Is(err, auth.ErrBadToken) || (errors.Is(err, auth.ErrNoToken) && header != "") {
		// A refused token is counted by address too, once Redis has said
		// it is not one: only a valid token gets past the address limit.
		if a.limitByAddress(c); c.IsAborted() {
			return
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, auth.ErrNoToken):
		c.Header("WWW-Authenticate", `Bearer realm="signpost"`)
		a.failWith(c, gateway.KindUnauthorized, fhir.IssueLogin, "an access token is required: get one from POST /auth/token (SMART Backend Services) and send it as Authorization: Bearer")
		return
	case errors.Is(err, auth.ErrBadToken):
		c.Header("WWW-Authenticate", `Bearer realm="signpost", error="invalid_token"`)
		a.failWith(c, gateway.KindUnauthorized, fhir.IssueLogin, "the access token is not valid or has expired; get a new one from POST /auth/token")
		return
	default:
		a.fail(c, gateway.ErrUnavailable)
		return
	}
	caller := gateway.Caller{ClientID: g.ClientID, Kind: gateway.CallerGP,
		Organization: gateway.Identifier{System: g.Organization.System, Value: g.Organization.Value}}
	switch g.Kind {
	case auth.KindProvider:
		caller.Kind = gateway.CallerProvider
	case auth.KindExporter:
		caller.Kind = gateway.CallerExporter
	case auth.KindEvaluator:
		caller.Kind = gateway.CallerEvaluator
	}
	c.Set(callerKey, caller)
	c.Set(grantKey, g)
}

// allow checks the token's scopes for one interaction on one type. The
// answer is 403 because the caller knows its own scopes: it learns nothing
// about any record from it.
func (a *API) allow(c *gin.Context, typ string, action auth.Action) bool {
	g, ok := grantOf(c)
	if !ok || g.Allows(typ, action) {
		return true
	}
	a.fail(c, scopeRefusal("", typ, action))
	return false
}

// allowTransaction checks the scopes for every entry of a transaction before
// any of it is applied.
func (a *API) allowTransaction(c *gin.Context, body []byte) bool {
	g, ok := grantOf(c)
	if !ok {
		return true
	}
	var b struct {
		Entry []struct {
			Request struct{ Method, URL string } `json:"request"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(body, &b) // malformed bodies are refused by the service with a precise outcome
	for i, e := range b.Entry {
		// The service accepts entry URLs relative or absolute under this base.
		path := strings.TrimPrefix(strings.TrimPrefix(e.Request.URL, a.fhirBase), "/")
		typ, _, _ := strings.Cut(path, "/")
		typ, _, _ = strings.Cut(typ, "?")
		if err := writeAllowed(g, "Bundle.entry["+strconv.Itoa(i)+"].request.url", typ, e.Request.Method == http.MethodPut); err != nil {
			a.fail(c, err)
			return false
		}
	}
	return true
}

// messageWrites holds what a BaRS message stores beside its referral to
// the rule a transaction entry storing it is held to (writeAllowed): the
// intake plans each entry and asks, for a new resource or a new version of
// one held; the refusal it returns names the entry. nil: no tokens.
func messageWrites(c *gin.Context) intake.MayWrite {
	g, ok := grantOf(c)
	if !ok {
		return nil
	}
	return func(typ string, update bool) error { return writeAllowed(g, "", typ, update) }
}

// writeAllowed is the scope rule for storing one resource, spelled once:
// a new one needs its type's create scope, a new version of one held its
// update scope. expr is where the refusal points ("": the caller places
// it).
func writeAllowed(g *auth.Grant, expr, typ string, update bool) error {
	action := auth.ActionCreate
	if update {
		action = auth.ActionUpdate
	}
	if g.Allows(typ, action) {
		return nil
	}
	return scopeRefusal(expr, typ, action)
}

// grantOf is the grant authenticate established (false: no authentication
// configured, nothing is checked).
func grantOf(c *gin.Context) (*auth.Grant, bool) {
	v, ok := c.Get(grantKey)
	if !ok {
		return nil, false
	}
	return v.(*auth.Grant), true
}

// insufficientScope is the scope an interaction needed and the token
// lacks. It travels in the refusal (gateway.Error.Err), so that fail
// names it in WWW-Authenticate wherever the refusal was found: at the
// door, or while a message's entries were planned.
type insufficientScope struct {
	typ    string
	action auth.Action
}

func (s insufficientScope) Error() string { return "system/" + s.typ + "." + string(s.action) }

// scopeRefusal is the 403 for a token without the scope for action on
// typ, at expr ("" for the request as a whole, or for the caller to place).
func scopeRefusal(expr, typ string, action auth.Action) error {
	scope := insufficientScope{typ: typ, action: action}
	e := gateway.NewError(gateway.KindForbidden, fhir.IssueForbidden, expr, "the access token's scopes do not allow this: it needs %s", scope)
	e.Err = scope
	return e
}

// scopeChallenge sets WWW-Authenticate for a refusal for want of a scope.
func scopeChallenge(c *gin.Context, err error) {
	var scope insufficientScope
	if errors.As(err, &scope) {
		c.Header("WWW-Authenticate", `Bearer realm="signpost", error="insufficient_scope", scope="`+scope.Error()+`"`)
	}
}
