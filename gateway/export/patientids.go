package export

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// The full export ($export without _deidentify) writes each resource as
// stored but for the ids of Patients. Patient ids are each GP system's own
// (gateway.PatientKey): two practices may both hold Patient/1, and a
// system-level export holds both. So that each Patient has one id in the
// export, and every reference to one resolves to it, a Patient's id becomes
// exportedPatientID of the GP system holding it and its id, in the Patient
// and in every reference to it; a reference is read as naming the Patient
// of the GP system whose resource holds it, as Signpost reads it (relative,
// or absolute under Signpost's own base).

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
// every reference to a Patient of Signpost's (relative, or absolute under
// base, Signpost's FHIR base), made exportedPatientID. A reference to a
// Patient on another server names none of the export's, and is kept. Every
// other byte is as stored, but for line breaks and the white space around
// them.
func withExportedPatientIDs(body []byte, typ, owner, base string) ([]byte, error) {
	newID := func(id string) string { return exportedPatientID(owner, id) }
	var ownID func(string) (string, bool)
	if typ == gateway.TypePatient {
		ownID = func(id string) (string, bool) { return newID(id), true }
	}
	body, err := fhir.RewriteIDs(body, ownID, func(ref string) (string, bool) {
		local := ref
		if base != "" {
			local = strings.TrimPrefix(ref, base+"/")
		}
		if !strings.HasPrefix(local, gateway.TypePatient+"/") {
			return ref, false
		}
		out := patientReference(ref, newID)
		return out, out != ref
	})
	if err != nil || !bytes.ContainsAny(body, "\r\n") {
		return body, err
	}
	var line bytes.Buffer
	err = json.Compact(&line, body)
	return line.Bytes(), err
}
