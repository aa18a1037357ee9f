package export

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/signpost-health/signpost/gateway"
)

// The full export ($export without _deidentify) writes each resource as
// stored but for the ids of Patients. Patient ids are each GP system's own
// (gateway.PatientKey): two practices may both hold Patient/1, and a
// system-level export holds both. So that each Patient has one id in the
// export, and every reference to one resolves to it, a Patient's id becomes
// exportedPatientID of the GP system holding it and its id, in the Patient
// and in every reference to it; a reference is read as naming the Patient
// of the GP system whose resource holds it, as Signpost reads it.

// exportedPatientID is the id a Patient has in a full export: SHA-256 of
// "Patient|{owner}|{id}" in lower-case base32 (52 letters and digits, a
// valid FHIR id), the same in every export of every deployment, so exports
// join up and one who knows a Patient's GP system and id can find it. It
// is no pseudonym: the full export holds the Patient's identifiers anyway;
// the de-identified export uses a keyed one (deidentifier.patientID).
func exportedPatientID(owner, id string) string {
	sum := sha256.Sum256([]byte(patientIDScope + "|" + gateway.PatientKey(owner, id)))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}

// withExportedPatientIDs returns body, a resource of type typ stored for
// owner, on one line, with its own id if it is a Patient, and the id in
// every reference to a Patient, made exportedPatientID. Everything else,
// member order and numbers included, is as stored; a body naming no
// Patient is only compacted.
func withExportedPatientIDs(body []byte, typ, owner string) ([]byte, error) {
	if typ != gateway.TypePatient && !bytes.Contains(body, []byte("Patient/")) && !bytes.Contains(body, []byte(`Patient\/`)) {
		if !bytes.ContainsAny(body, "\r\n") {
			return body, nil
		}
		var line bytes.Buffer
		err := json.Compact(&line, body)
		return line.Bytes(), err
	}
	newID := func(id string) string { return exportedPatientID(owner, id) }
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	var out bytes.Buffer
	enc := jsontext.NewEncoder(&out)
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if tok.Kind() == '"' {
			depth := dec.StackDepth()
			if kind, n := dec.StackIndex(depth); kind == '{' && n%2 == 0 {
				// A member's value: its name is the pointer's last token.
				ptr := dec.StackPointer()
				name := ptr.LastToken()
				s := tok.String()
				switch {
				case depth == 1 && name == "id" && typ == gateway.TypePatient:
					tok = jsontext.String(newID(s))
				case name == "reference":
					if ref := patientReference(s, newID); ref != s {
						tok = jsontext.String(ref)
					}
				}
			}
		}
		if err := enc.WriteToken(tok); err != nil {
			return nil, err
		}
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}
