package account

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// PortalUser is a person who signs in to Signpost's web pages: a member of
// a provider's staff, who works the referral inbox and only ever sees that
// provider's referrals, or an operator (a link-worker lead or commissioner),
// who sees the outcomes view: counts and times, never a person's details.
// Operators of the deployment manage the accounts (signpost users).
type PortalUser struct {
	Email        string // lower case: the account's name
	ProviderID   string // "" for an operator
	PasswordHash string // bcrypt
	Disabled     bool
	Created      time.Time
}

// Operator reports whether the account is an operator's rather than a
// provider's staff.
func (u *PortalUser) Operator() bool { return u.ProviderID == "" }

// WebSession is one signed-in browser. Only the digest of its cookie's
// token is kept, so a copy of the store does not let anyone sign in.
type WebSession struct {
	Email      string
	ProviderID string // the account's, read afresh with every request
	// CSRF is the token every form of this session carries back.
	CSRF    string
	Created time.Time
}

// Operator reports whether the session is an operator's.
func (s *WebSession) Operator() bool { return s.ProviderID == "" }

var (
	// ErrUserExists: an account with this address is already kept.
	ErrUserExists = errors.New("an account with this address already exists")
	// ErrNoSuchUser: no account with this address.
	ErrNoSuchUser = errors.New("no account with this address")
)

// Password rules. bcrypt reads at most 72 bytes; a longer password is
// refused rather than silently cut, so what the user typed is what counts.
const (
	MinPasswordLength = 12
	maxPasswordBytes  = 72
	passwordCost      = 12 // about a quarter of a second per sign-in here
)

// NewPortalUser checks an address and a password and makes the account,
// the password kept only as its bcrypt hash. providerID "" makes an
// operator's account.
func NewPortalUser(email, providerID, password string, now time.Time) (PortalUser, error) {
	addr, err := CanonicalEmail(email)
	if err != nil {
		return PortalUser{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return PortalUser{}, err
	}
	return PortalUser{Email: addr, ProviderID: providerID, PasswordHash: hash, Created: now}, nil
}

// HashPassword checks a password against the rules and returns the bcrypt
// hash an account keeps instead of it.
func HashPassword(password string) (string, error) {
	switch {
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return "", fmt.Errorf("the password is too short: at least %d characters", MinPasswordLength)
	case len(password) > maxPasswordBytes:
		return "", fmt.Errorf("the password is too long: at most %d bytes", maxPasswordBytes)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), passwordCost)
	return string(hash), err
}

// CanonicalEmail is an address as an account name: a bare address, in
// lower case.
func CanonicalEmail(email string) (string, error) {
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != strings.TrimSpace(email) || a.Name != "" {
		return "", errors.New("not an email address: give a bare address such as name@example.org")
	}
	return strings.ToLower(a.Address), nil
}

// PasswordMatches reports whether password is the account's, taking the
// same time whether or not it is.
func (u *PortalUser) PasswordMatches(password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) == nil
}
