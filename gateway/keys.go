package gateway

// Idempotency keys: what makes a second request the first one again. Each
// is claimed once, for ever, in the commit that makes what it names
// (Commit.Unique), and every key is built here.

// ReferralKey is the idempotency key of a referral: one client's business
// identifier names one referral however often it is sent.
func ReferralKey(caller Caller, id Identifier) string {
	return "referral|" + caller.ClientID + "|" + id.System + "|" + id.Value
}

// ReferralTaskKey holds the one referral Task of a ServiceRequest.
func ReferralTaskKey(srID string) string { return "referral-task|" + srID }

// MessageKey is the idempotency key of a message: one client's message id
// names one referral however often the message is sent.
func MessageKey(caller Caller, id string) string {
	return "message|" + caller.ClientID + "|" + id
}

// MessageRequestKey holds an X-Request-Id a client used: each is processed once.
func MessageRequestKey(caller Caller, id string) string {
	return "message-request|" + caller.ClientID + "|" + id
}

// MessageFocusKey names a referral by the fullUrl its new message gave
// its ServiceRequest entry: a BaRS sender keeps that identity for the
// ServiceRequest in the messages that update or withdraw it, and a
// ServiceRequest need not carry a business identifier.
func MessageFocusKey(caller Caller, fullURL string) string {
	return "message-focus|" + caller.ClientID + "|" + fullURL
}

// MessageEntryKey names the resource a sender's message entry made
// ("Type/id") by the entry's fullUrl, which a BaRS sender keeps for that
// resource in later messages. The entry's id is derived from the same
// names, but on a store that spreads referrals it also carries its
// referral's partition, so another referral's message reusing the fullUrl
// (placed elsewhere) derives another id: this key, claimed beside the
// entry, is how such a reuse is still found.
func MessageEntryKey(caller Caller, fullURL string) string {
	return "message-entry|" + caller.ClientID + "|" + fullURL
}

// MessageOriginKey holds the id (Bundle.id) of the BaRS message that made a
// referral, by its ServiceRequest id: the servicerequest-response messages
// answering it name that id (MessageHeader.response.identifier). Claimed in
// the referral's own commit, so a referral never exists without it.
func MessageOriginKey(srID string) string { return "message-origin|" + srID }

// SentMessageKey holds the referral Task a BaRS message Signpost sent a
// provider was about ("Task/{id}"), by the message's id (Bundle.id): the
// provider's servicerequest-response names that id
// (MessageHeader.response.identifier), and this key is how it finds the
// Task. Claimed before the message is first sent, so an answer can never
// arrive before it.
func SentMessageKey(messageID string) string { return "sent-message|" + messageID }
