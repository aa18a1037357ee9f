package gateway

// The vocabulary of NHS England's Booking and Referral Standard (BaRS)
// messages: gateway/bars reads requests by it, and the use cases that
// answer a BaRS sender write by it.
const (
	BaRSEventSystem  = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
	BaRSReasonSystem = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"

	BaRSServiceRequestRequest  = "servicerequest-request"
	BaRSServiceRequestResponse = "servicerequest-response"
)
