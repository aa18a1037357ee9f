package auth

import "encoding/json"

// defaultScopesSupported are the scopes SmartConfiguration advertises when
// given none: what the FHIR API serves on ServiceRequest and Task.
var defaultScopesSupported = []string{
	"system/ServiceRequest.c", "system/ServiceRequest.rs", "system/ServiceRequest.u",
	"system/Task.c", "system/Task.rs", "system/Task.u",
}

// SmartConfiguration returns the JSON document for
// GET /.well-known/smart-configuration (served as application/json).
// scopes_supported lists scopes, or when none are given the ServiceRequest
// and Task scopes (c, rs, u) of the FHIR API.
func SmartConfiguration(tokenURL string, scopes ...string) []byte {
	if len(scopes) == 0 {
		scopes = defaultScopesSupported
	}
	b, err := json.MarshalIndent(struct {
		TokenEndpoint   string   `json:"token_endpoint"`
		AuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
		AuthSigningAlgs []string `json:"token_endpoint_auth_signing_alg_values_supported"`
		GrantTypes      []string `json:"grant_types_supported"`
		ScopesSupported []string `json:"scopes_supported"`
		Capabilities    []string `json:"capabilities"`
	}{
		TokenEndpoint:   tokenURL,
		AuthMethods:     []string{"private_key_jwt"},
		AuthSigningAlgs: supportedAlgs,
		GrantTypes:      []string{GrantTypeClientCredentials},
		ScopesSupported: scopes,
		Capabilities:    []string{"client-confidential-asymmetric"},
	}, "", "  ")
	if err != nil {
		panic("auth: marshalling the SMART configuration: " + err.Error()) // strings and string slices always marshal
	}
	return append(b, '\n')
}
