package gateway

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// PortalUser is a member of a provider's staff who signs in to the web
// inbox. Operators manage them (signpost users); they only ever see their
// own provider's referrals.
type PortalUser struct {
	Email        string // lower case: the account's name
	ProviderID   string
	PasswordHash string // bcrypt
	Disabled     bool
	Created      time.Time
}

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
// the password kept only as its bcrypt hash.
func NewPortalUser(email, providerID, password string, now time.Time) (PortalUser, error) {
	addr, err := CanonicalEmail(email)
	if err != nil {
		return PortalUser{}, err
	}
	switch {
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return PortalUser{}, fmt.Errorf("the password is too short: at least %d characters", MinPasswordLength)
	case len(password) > maxPasswordBytes:
		return PortalUser{}, fmt.Errorf("the password is too long: at most %d bytes", maxPasswordBytes)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), passwordCost)
	if err != nil {
		return PortalUser{}, err
	}
	return PortalUser{Email: addr, ProviderID: providerID, PasswordHash: string(hash), Created: now}, nil
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
