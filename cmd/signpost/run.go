package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/signpost-health/signpost/mappings"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// usageError is a mistake on the command line: exit status 2, as flag does.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

const usage = `Signpost — social prescribing referral gateway (FHIR R4)

Usage:
  signpost demo                        the whole closed loop on this machine, with example systems
  signpost serve [-config FILE]        the FHIR API at /fhir, health endpoints and delivery workers
  signpost worker [-config FILE]       delivery workers only (scale apart from the API)
  signpost dlq list                    deliveries that failed for good
  signpost dlq replay ID...|-all       send dead letters again (and re-enable a 410 endpoint)
  signpost mappings check FILE         validate a referral code table and summarise it
  signpost audit tail [-n N] [-f]      print the latest AuditEvents (one JSON a line)
  signpost retention [-dry-run]        remove (or count) closed referrals past retention.closed_after
  signpost users add PROVIDER_ID EMAIL a provider staff account (password on standard input)
  signpost users password EMAIL        a new password (on standard input); signs the account out
  signpost users disable EMAIL         stop an account signing in
  signpost users enable EMAIL          let a disabled account sign in again
  signpost users list                  every account: address, provider, status
  signpost version | --version         print the build's version (its revision, when built from a git checkout)

Every command takes -h for its usage.

Environment (wins over the file): SIGNPOST_CONFIG, SIGNPOST_LISTEN,
SIGNPOST_REDIS_URL, SIGNPOST_REDIS_CLUSTER (a Redis Cluster's nodes; its
password in SIGNPOST_REDIS_PASSWORD, user in SIGNPOST_REDIS_USERNAME),
SIGNPOST_REDIS_NAMESPACE, SIGNPOST_PUBLIC_URL.
`

// errHelpShown is a command asked for its usage (-h): the usage was
// printed, and that is success (exit 0).
var errHelpShown = errors.New("help shown")

// isHelp reports an argument that asks for usage.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// run is the whole program: it parses the command line and runs one
// subcommand until it finishes or ctx is cancelled.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], getenv, stdout, stderr)
	case "worker":
		return runWorker(ctx, args[1:], getenv, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, args[1:], getenv, stdout, stderr)
	case "retention":
		return runRetention(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		return runAudit(ctx, args[1:], getenv, stdout, stderr)
	case "users":
		return runUsers(ctx, args[1:], getenv, os.Stdin, stdout, stderr)
	case "mappings":
		const use = "usage: signpost mappings check FILE   (validates a referral code table and summarises it)"
		if len(args) > 1 && isHelp(args[len(args)-1]) {
			fmt.Fprintln(stdout, use)
			return nil
		}
		if len(args) != 3 || args[1] != "check" {
			return usageError{use}
		}
		return mappings.Check(args[2], stdout)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "signpost", buildVersion())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("signpost "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// flagError is what a flag parsing error means: -h asked for the usage
// (printed by the flag package), anything else is a usage mistake.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return errHelpShown
	}
	return usageError{strings.TrimSpace(err.Error())}
}

// buildVersion is the build's version, as describeBuild reads it.
func buildVersion() string {
	info, _ := debug.ReadBuildInfo()
	return describeBuild(version, info)
}

// describeBuild names a build: the version set at link time when one was
// (deploy/build.sh VERSION), else the version control information Go
// recorded in the binary (go build in a git checkout, -buildvcs on): the
// revision, -dirty when the tree had uncommitted changes, and the commit's
// time; a release's module version goes before it (go install
// …/cmd/signpost@v1.2.3 records the version and no revision). Go also
// records a pseudo-version made from the revision (v0.0.0-2026…-7dae4dc4cb3d),
// which says nothing the revision does not, so it is left out. dev only
// when nothing is known.
func describeBuild(linked string, info *debug.BuildInfo) string {
	if linked != "" && linked != "dev" {
		return linked
	}
	if info == nil {
		return "dev"
	}
	var rev, when string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	release := strings.TrimSuffix(info.Main.Version, "+dirty")
	if release == "(devel)" || (rev != "" && strings.HasSuffix(release, "-"+short(rev))) {
		release = "" // none, or a pseudo-version made from the revision
	}
	if rev == "" {
		if release == "" {
			return "dev"
		}
		return release
	}
	v := short(rev)
	if dirty {
		v += "-dirty"
	}
	if when != "" {
		v += " (" + when + ")"
	}
	if release != "" {
		v = release + " " + v
	}
	return v
}

// short is a revision as git abbreviates it in pseudo-versions: 12 characters.
func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
