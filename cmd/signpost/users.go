package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/gateway/account"
)

// runUsers is `signpost users`: the accounts of provider staff who use the
// web inbox and of operators (link-worker leads, commissioners) who use the
// outcomes view. add and password read the password from standard input, so
// it never appears in the process list or shell history; disable and
// enable stop and restart an account; list shows every account for an
// access review.
func runUsers(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	const use = "usage: signpost users add [-config FILE] PROVIDER_ID EMAIL  (password on standard input)\n" +
		"       signpost users add [-config FILE] -operator EMAIL\n" +
		"       signpost users password [-config FILE] EMAIL  (new password on standard input; signs the account out)\n" +
		"       signpost users disable [-config FILE] EMAIL\n" +
		"       signpost users enable [-config FILE] EMAIL\n" +
		"       signpost users list [-config FILE]"
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, use)
		return nil
	}
	if len(args) == 0 {
		return usageError{use}
	}
	// What each command takes besides its flags.
	operands, known := map[string]int{"add": 2, "list": 0, "password": 1, "disable": 1, "enable": 1}[args[0]]
	if !known {
		return usageError{use}
	}
	fs := newFlags("users "+args[0], stderr)
	configPath := fs.String("config", "", "configuration file (YAML); default $SIGNPOST_CONFIG")
	operator := false
	if args[0] == "add" {
		fs.BoolVar(&operator, "operator", false, "an operator's account: the outcomes view, no provider's referrals")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return flagError(err)
	}
	rest := fs.Args()
	if operator {
		rest = append([]string{""}, rest...) // no provider
	}
	if len(rest) != operands {
		return usageError{use}
	}
	if args[0] == "list" {
		return listAccounts(ctx, *configPath, getenv, stdout, stderr)
	}
	if args[0] != "add" {
		return changeAccount(ctx, args[0], rest[0], *configPath, getenv, stdin, stdout, stderr)
	}
	a, err := start(ctx, *configPath, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	providerID, email := rest[0], rest[1]
	if !operator && !configuredProvider(a, providerID) {
		if *configPath == "" && getenv(config.EnvConfig) == "" {
			return fmt.Errorf("no configuration given, so no provider is known: pass -config FILE (the file signpost serve runs with) or set %s", config.EnvConfig)
		}
		return fmt.Errorf("no provider %q in the configuration", providerID)
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	u, err := account.NewPortalUser(email, providerID, password, time.Now())
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

// listAccounts prints every account, for an operator reviewing who can
// sign in: address, provider (or operator), status and when it was made.
func listAccounts(ctx context.Context, configPath string, getenv func(string) string, stdout, stderr io.Writer) error {
	a, err := start(ctx, configPath, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	accounts, err := a.store.Accounts(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tFOR\tSTATUS\tCREATED")
	for _, u := range accounts {
		role, status := u.ProviderID, "enabled"
		if role == "" {
			role = "operator (outcomes view)"
		}
		if u.Disabled {
			status = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Email, role, status, u.Created.UTC().Format(time.DateOnly))
	}
	if len(accounts) == 0 {
		sayIfNoData(ctx, a, stderr)
	}
	return tw.Flush()
}

// changeAccount disables, enables or sets the password of an account.
func changeAccount(ctx context.Context, action, address, configPath string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	email, err := account.CanonicalEmail(address)
	if err != nil {
		return err
	}
	hash := ""
	if action == "password" {
		// Read and checked before anything connects, so a refused password
		// changes nothing.
		password, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if hash, err = account.HashPassword(password); err != nil {
			return err
		}
	}
	a, err := start(ctx, configPath, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	var done string
	switch action {
	case "disable":
		err, done = a.store.DisableUser(ctx, email), "can no longer sign in"
	case "enable":
		err, done = a.store.EnableUser(ctx, email), "can sign in again"
	case "password":
		err, done = a.store.SetPassword(ctx, email, hash), "has a new password and is signed out everywhere"
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s\n", email, done)
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
func readPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	// At a terminal the password is asked for, twice, and not echoed;
	// piped in, it is the first line.
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password (12 characters to 72 bytes): ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		fmt.Fprint(prompt, "The same password again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if string(first) != string(again) {
			return "", errors.New("the two passwords differ; nothing was changed")
		}
		if len(first) == 0 {
			return "", errors.New("no password given")
		}
		return string(first), nil
	}
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
