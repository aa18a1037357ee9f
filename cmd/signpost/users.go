package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/signpost-health/signpost/gateway"
)

// runUsers is `signpost users add PROVIDER_ID EMAIL` (the password read
// from standard input, so it never appears in the process list or shell
// history), `signpost users add -operator EMAIL` and `signpost users
// disable EMAIL`: the accounts of provider staff who use the web inbox and
// of operators (link-worker leads, commissioners) who use the outcomes view.
func runUsers(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	const use = "usage: signpost users add [-config FILE] PROVIDER_ID EMAIL  (password on standard input)\n" +
		"       signpost users add [-config FILE] -operator EMAIL\n" +
		"       signpost users disable [-config FILE] EMAIL"
	if len(args) == 0 || (args[0] != "add" && args[0] != "disable") {
		return usageError{use}
	}
	fs := newFlags("users "+args[0], stderr)
	configPath := fs.String("config", "", "configuration file (YAML); default $SIGNPOST_CONFIG")
	operator := false
	if args[0] == "add" {
		fs.BoolVar(&operator, "operator", false, "an operator's account: the outcomes view, no provider's referrals")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	rest := fs.Args()
	if operator {
		rest = append([]string{""}, rest...) // no provider
	}
	if (args[0] == "add" && len(rest) != 2) || (args[0] == "disable" && len(rest) != 1) {
		return usageError{use}
	}
	a, err := start(ctx, *configPath, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	if args[0] == "disable" {
		email, err := gateway.CanonicalEmail(rest[0])
		if err != nil {
			return err
		}
		if err := a.store.DisableUser(ctx, email); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s can no longer sign in\n", email)
		return nil
	}
	providerID, email := rest[0], rest[1]
	if !operator && !configuredProvider(a, providerID) {
		return fmt.Errorf("no provider %q in the configuration", providerID)
	}
	password, err := readPassword(stdin)
	if err != nil {
		return err
	}
	u, err := gateway.NewPortalUser(email, providerID, password, time.Now())
	if err != nil {
		return err
	}
	if err := a.store.AddUser(ctx, u); err != nil {
		return err
	}
	if operator {
		fmt.Fprintf(stdout, "%s can sign in to the outcomes view\n", u.Email)
		return nil
	}
	fmt.Fprintf(stdout, "%s can sign in for %s\n", u.Email, providerID)
	return nil
}

func configuredProvider(a *app, id string) bool {
	for _, p := range a.cfg.Providers {
		if p.ID == id {
			return true
		}
	}
	return false
}

// readPassword is the first line of standard input, without its line end.
func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input: pipe or type one line")
	}
	return line, nil
}
