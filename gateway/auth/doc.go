// Package auth authenticates the systems that call Signpost's FHIR API, using
// SMART Backend Services: the OAuth 2.0 client_credentials grant with
// private_key_jwt client authentication (RFC 7523, asymmetric keys only).
//
// GP record systems (which refer) and VCS providers (which work referrals)
// are registered with a JSON Web Key Set, inline or by jwks_url, and the
// scopes they may be granted. A caller POSTs a signed client assertion to the
// token endpoint; [Server.Token] checks the JWS header (only RS384, ES384 and
// RS512 are accepted, before any key is touched), finds the registered key,
// verifies the signature with github.com/lestrrat-go/jwx, checks the claims
// (iss = sub = client_id, aud = the token URL, a short exp, a jti never seen
// before) and the requested scopes, and issues an opaque access token that
// lives at most 300 seconds. [Server.Authenticate] turns an Authorization
// header back into the [Grant] that token stands for, and [Grant.Allows]
// answers whether that grant covers an action on a resource type.
//
// The package keeps no state of its own beyond a cache of fetched JWK Sets:
// replay protection and token storage are the [ReplayCache] and [TokenStore]
// interfaces, implemented over Redis by the caller so that every gateway
// instance sees the same jti and token records.
//
// Errors from [Server.Token] are either an [*OAuthError] (answer with its
// Status and its JSON form) or an error wrapping [ErrUnavailable] (storage
// could not be reached: answer 503). [Server.Authenticate] returns
// [ErrNoToken] or [ErrBadToken] (answer 401) or an error wrapping
// [ErrUnavailable].
package auth
