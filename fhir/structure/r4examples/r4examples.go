// Package r4examples holds official FHIR R4 example resources, for tests
// that hold Signpost to published FHIR rather than to examples it wrote: a
// selection of the npm package hl7.fhir.r4.examples 4.0.1 (CC0), unmodified
// — the resources a referral, a BaRS message or a closed loop carries, and
// Bundles. Only tests import it.
package r4examples

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "embed"
	"io"
)

//go:embed r4-examples.tar.gz
var archive []byte

// All returns every example by its file name ("Patient-example.json").
func All() (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out[h.Name] = b
	}
}
