// Package export is the FHIR Bulk Data system-level export ($export): an
// operator asks for every current resource of some types (changed since an
// instant), Signpost writes them to NDJSON files in the background, and the
// operator polls for the manifest and downloads the files.
//
// A job's state lives in the JobStore (Redis), not in the process that runs
// it, so any replica answers a status request. The files live in one
// directory (config export.dir); with more than one replica serving the API
// it must be a volume every replica sees.
//
// A job is run by a goroutine of the process that accepted it, which renews
// the job's heartbeat as it goes. A job whose heartbeat stops (the process
// stopped or restarted) is reported as failed, with an OperationOutcome
// saying so, never as complete: its files may be half written.
//
// Finished jobs and their files are removed Keep after they finished, by a
// sweep run lazily at each kick-off and status request (there is no
// worker for it yet).
//
// It imports the domain (gateway), the fhir packages (structure checks each
// de-identified line) and the standard library only; it knows nothing of
// HTTP or Redis.
package export
