package config

import _ "embed"

//go:embed example.yaml
var example []byte

// Example returns the annotated example configuration. It is embedded so the
// demo can run with no file on disk and so the documented example is tested
// to stay valid. Each call returns a fresh copy the caller may modify.
func Example() []byte {
	return append([]byte(nil), example...)
}
