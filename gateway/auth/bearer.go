package auth

import (
	"context"
	"strings"
)

// Authenticate checks an Authorization header ("Bearer <token>", scheme
// case-insensitive) and returns the grant of the token, held to the client's
// configuration as it is now: the token store (shared by every replica)
// keeps a grant as it was issued, and a client whose scopes an operator
// narrowed, or whose kind or organisation changed, must not keep the old
// ones for the rest of the token's life. Errors: ErrNoToken (no header, or
// another scheme), ErrBadToken (too long, malformed, unknown, expired, or of
// a client no longer registered), or an error wrapping ErrUnavailable when
// the token store failed.
func (s *Server) Authenticate(ctx context.Context, authorization string) (*Grant, error) {
	if strings.TrimSpace(authorization) == "" {
		return nil, ErrNoToken
	}
	if len(authorization) > s.maxAuthz {
		return nil, ErrBadToken
	}
	scheme, rest, _ := strings.Cut(strings.TrimLeft(authorization, " "), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, ErrNoToken
	}
	token := strings.Trim(rest, " ")
	if !wellFormedToken(token) {
		return nil, ErrBadToken
	}
	g, err := s.tokens.Load(ctx, tokenKey(token))
	if err != nil {
		return nil, unavailable("token store", err)
	}
	if g == nil || !s.now().Before(g.Expires) {
		return nil, ErrBadToken
	}
	c, ok := s.clients[g.ClientID]
	if !ok {
		return nil, ErrBadToken
	}
	g.Kind, g.Organization = c.Kind, c.Organization
	g.Scopes = narrowScopes(g.Scopes, c.scopes)
	return g, nil
}

// wellFormedToken reports whether token has the shape of the tokens this
// server issues (43 base64url characters), so junk never reaches the store.
func wellFormedToken(token string) bool {
	if len(token) != tokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
