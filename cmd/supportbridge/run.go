package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"runtime/debug"
	"syscall"

	"supportbridge/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

// exitError carries an exit status; its message has already been printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

const usage = `usage: supportbridge <command> [flags]

commands:
  demo [--listen ADDR] [--pace DURATION]
                               the whole loop in one process, nothing to install
                               (--pace: how long the desk agent takes to answer)
  serve --config FILE          run the daemon
  check-config --config FILE   validate a configuration file
  digest --config FILE [--period daily|weekly]
                               send the digests of the last scheduled period now
  version                      print the version

every command takes -h (or --help) for its flags.

ops commands (on the deployment's Redis; each takes --config FILE and --json, one
JSON document instead of tables, for scripts):
  jobs list [--dead|--retry] --config FILE
                               dead (or retrying) jobs
  jobs replay --config FILE (--all | ID...)
                               put dead jobs back in the queue
  quarantine list --config FILE
                               mails that could not be applied, and why
  quarantine assign --config FILE KEY TICKET_ID
                               apply a quarantined mail to a ticket
  quarantine discard --config FILE KEY
                               drop a mail from the quarantine list
  ticket show --config FILE ID
                               a ticket with its exchanges and timeline
  status --config FILE         job queue depths, IMAP poller, quarantine
`

// run is the whole program: main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return exitError{2}
	}
	err := dispatch(ctx, args[1], args[2:], getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		// -h or --help: the command printed its flags.
		return nil
	}
	return err
}

func dispatch(ctx context.Context, cmd string, rest []string, getenv func(string) string, stdout, stderr io.Writer) error {
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, getenv, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, getenv, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(rest, getenv, stdout, stderr)
	case "digest":
		return cmdDigest(ctx, rest, getenv, stdout, stderr)
	case "jobs":
		return cmdJobs(ctx, rest, getenv, stdout, stderr)
	case "quarantine":
		return cmdQuarantine(ctx, rest, getenv, stdout, stderr)
	case "ticket":
		return cmdTicket(ctx, rest, getenv, stdout, stderr)
	case "status":
		return cmdStatus(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "supportbridge", versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "supportbridge: unknown command %q\n%s", cmd, usage)
	return exitError{2}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// newFlags returns a flag set that reports to stderr and never exits.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses a command's flags: flag.ErrHelp after -h or --help
// (run then exits 0), exit status 2 for a flag it does not know, and an
// error for any argument left over when the command takes none.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs bool, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{2}
	}
	if !allowArgs && fs.NArg() > 0 {
		fmt.Fprintf(stderr, "supportbridge %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitError{2}
	}
	return nil
}

// loadConfig parses the --config flag and loads the file; problems are
// printed one a line.
func loadConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (*config.Config, *flag.FlagSet, error) {
	fs := newFlags(name, stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := parseFlags(fs, args, false, stderr); err != nil {
		return nil, nil, err
	}
	if *path == "" {
		fmt.Fprintf(stderr, "supportbridge %s: --config FILE is required\n", name)
		return nil, nil, exitError{2}
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		printConfigError(stderr, err)
		return nil, nil, exitError{1}
	}
	return cfg, fs, nil
}

func printConfigError(w io.Writer, err error) {
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Fprintln(w, p)
		}
		return
	}
	fmt.Fprintln(w, err)
}

func cmdCheckConfig(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("check-config", args, getenv, stderr)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	fmt.Fprintln(stdout, "configuration is valid")
	return nil
}
