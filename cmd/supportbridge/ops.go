package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
	"supportbridge/bridge/redisstore"
	"supportbridge/config"
)

// The ops commands act on a deployment's Redis: each opens, from the
// configuration file, only what it uses (the Redis client, and on it the
// store or the job queue), never the daemon nor any of its loops (no HTTP
// server, no job workers, no IMAP reader, no SMTP), so they can run beside
// the replicas that serve.

const (
	jobsUsage = `usage:
  supportbridge jobs list [--dead|--retry] [--json] --config FILE
  supportbridge jobs replay [--json] --config FILE (--all | ID...)
`
	quarantineUsage = `usage:
  supportbridge quarantine list [--json] --config FILE
  supportbridge quarantine assign --config FILE KEY TICKET_ID
  supportbridge quarantine discard --config FILE KEY
`
	ticketUsage = `usage:
  supportbridge ticket show [--json] --config FILE ID
`
	statusUsage = `usage:
  supportbridge status [--json] --config FILE
`
)

// opsPingTimeout bounds the first contact with Redis, so that an
// unreachable server is reported at once rather than at each step.
const opsPingTimeout = 10 * time.Second

// ops is one ops command at work.
type ops struct {
	name   string // "jobs list", for messages
	stdout io.Writer
	stderr io.Writer
	json   bool
	cfg    *config.Config
	log    *slog.Logger
	scrub  *strings.Replacer
	rdb    redis.UniversalClient
	st     *redisstore.Store // nil until store opens it
	q      *jobqueue.Queue   // nil until queue opens it
}

// opsFlags is the flag set of an ops command: --config and --json, and
// whatever the command adds.
type opsFlags struct {
	fs     *flag.FlagSet
	config *string
	json   *bool
	stderr io.Writer
}

func newOpsFlags(name string, stderr io.Writer) *opsFlags {
	fs := newFlags(name, stderr)
	return &opsFlags{fs: fs, stderr: stderr,
		config: fs.String("config", "", "configuration file (YAML)"),
		json:   fs.Bool("json", false, "write one JSON document instead of tables")}
}

// parse accepts flags before, between and after the arguments (`ticket
// show 42 --json` as well as `ticket show --json 42`), and returns the
// arguments. "--" ends the flags: what follows is all arguments.
func (f *opsFlags) parse(args []string) ([]string, error) {
	var rest []string
	for len(args) > 0 {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		remaining := f.fs.Args()
		if consumed := args[:len(args)-len(remaining)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(rest, remaining...), nil
		}
		if len(remaining) == 0 {
			break
		}
		rest = append(rest, remaining[0])
		args = remaining[1:]
	}
	return rest, nil
}

// open parses an ops command's flags and arguments, requires --config,
// lets check refuse the arguments (it returns a usage message, or "" when
// they are right; the command's own flags are parsed by then), and opens
// the deployment. The caller closes what it returns.
func (f *opsFlags) open(ctx context.Context, name, usage string, args []string, check func(rest []string) string,
	getenv func(string) string, stdout io.Writer) (*ops, []string, error) {
	rest, err := f.parse(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, exitError{2}
	}
	if *f.config == "" {
		return nil, nil, usageError(f.stderr, name, usage, "--config FILE is required")
	}
	if msg := check(rest); msg != "" {
		return nil, nil, usageError(f.stderr, name, usage, "%s", msg)
	}
	o, err := openOps(ctx, name, *f.config, *f.json, getenv, stdout, f.stderr)
	return o, rest, err
}

// noArguments is the check of a command that takes no argument.
func noArguments(rest []string) string {
	if len(rest) > 0 {
		return fmt.Sprintf("unexpected argument %q", rest[0])
	}
	return ""
}

// exactly is the check of a command that takes n arguments.
func exactly(n int, msg string) func(rest []string) string {
	return func(rest []string) string {
		if len(rest) != n {
			return msg
		}
		return ""
	}
}

// opsCommand is one subcommand of an ops command.
type opsCommand func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// runSubcommand runs the subcommand args[0] of the command name; ask is
// what to say when none is given.
func runSubcommand(ctx context.Context, name, usage, ask string, subs map[string]opsCommand, args []string,
	getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError(stderr, name, usage, "%s", ask)
	}
	if sub, ok := subs[args[0]]; ok {
		return sub(ctx, args[1:], getenv, stdout, stderr)
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError(stderr, name, usage, "unknown subcommand %q", args[0])
}

// usageError prints the problem and the command's usage, exit status 2.
func usageError(stderr io.Writer, name, usage, format string, args ...any) error {
	fmt.Fprintf(stderr, "supportbridge %s: %s\n%s", name, fmt.Sprintf(format, args...), usage)
	return exitError{2}
}

// openOps loads the configuration, opens the Redis client and checks that
// Redis answers. The command opens what it uses on it (store, queue).
func openOps(ctx context.Context, name, path string, asJSON bool, getenv func(string) string, stdout, stderr io.Writer) (*ops, error) {
	cfg, err := config.Load(path, getenv)
	if err != nil {
		printConfigError(stderr, err)
		return nil, exitError{1}
	}
	o := &ops{name: name, stdout: stdout, stderr: stderr, json: asJSON, cfg: cfg, scrub: secretScrubber(cfg),
		log: newLogger(stderr, "warn")}
	routeRedisLogs(o.log)
	if o.rdb, err = newRedis(cfg.Redis); err != nil {
		return nil, o.fail(err)
	}
	pctx, cancel := context.WithTimeout(ctx, opsPingTimeout)
	defer cancel()
	if err := o.rdb.Ping(pctx).Err(); err != nil {
		o.close()
		return nil, o.fail(fmt.Errorf("redis %s unreachable: %w", strings.Join(cfg.Redis.Addrs, ","), err))
	}
	return o, nil
}

// store is the deployment's store, opened on first use.
func (o *ops) store() *redisstore.Store {
	if o.st == nil {
		o.st = redisstore.New(o.rdb, storeOptions(o.cfg))
	}
	return o.st
}

// queue is the deployment's job queue, opened on first use: its inspector
// lists, replays and counts the jobs; its client takes the effects a
// command causes.
func (o *ops) queue() *jobqueue.Queue {
	if o.q == nil {
		o.q = jobqueue.New(o.rdb, queueOptions(o.cfg, o.log))
	}
	return o.q
}

// close closes what the command opened.
func (o *ops) close() {
	if o.q != nil {
		o.q.Close()
	}
	o.rdb.Close()
}

// fail prints err on stderr and returns exit status 1.
func (o *ops) fail(err error) error {
	msg := err.Error()
	if o.scrub != nil {
		msg = o.scrub.Replace(msg)
	}
	fmt.Fprintf(o.stderr, "supportbridge %s: %s\n", o.name, msg)
	return exitError{1}
}

func (o *ops) writeJSON(v any) error {
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return o.fail(fmt.Errorf("write json: %w", err))
	}
	return nil
}

// secretScrubber replaces the configuration's secrets, and the parts of
// the callback URL that may carry one, wherever they appear in a text
// shown to an operator (an error from a library may quote them).
func secretScrubber(cfg *config.Config) *strings.Replacer {
	var secrets []string
	add := func(s config.Secret) {
		if v := s.Reveal(); len(v) >= 4 {
			secrets = append(secrets, v)
		}
	}
	add(cfg.Redis.Password)
	add(cfg.ENT.CallbackSecret)
	add(cfg.Desk.SigningKey)
	for _, s := range cfg.Desk.PreviousSigningKeys {
		add(s)
	}
	add(cfg.SMTP.Password)
	add(cfg.IMAP.Password)
	for _, s := range cfg.ENT.WebhookSecrets {
		add(s)
	}
	for _, s := range cfg.ENT.APITokens {
		add(s)
	}
	for _, s := range cfg.Operators.MetricsTokens {
		add(s)
	}
	for _, s := range cfg.ENT.CallbackExtraSecrets {
		add(s)
	}
	var pairs []string
	if u, err := url.Parse(cfg.ENT.CallbackURL); err == nil && cfg.ENT.CallbackURL != "" &&
		(u.User != nil || u.RawQuery != "" || u.Fragment != "") {
		shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String() + "?[redacted]"
		pairs = append(pairs, cfg.ENT.CallbackURL, shown)
		// net/http quotes the URL with its password masked, so the whole
		// URL may not match: its parts are secrets of their own.
		if pw, ok := u.User.Password(); ok {
			add(config.Secret(pw))
		}
		add(config.Secret(u.RawQuery))
		add(config.Secret(u.Fragment))
	}
	// Longest first, so that a secret holding another is replaced whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, s := range secrets {
		pairs = append(pairs, s, "[redacted]")
	}
	return strings.NewReplacer(pairs...)
}

// terminalSafe makes text from users and mails safe for a terminal: control
// characters (escape sequences among them) and the bidirectional overrides
// that reorder what is shown become spaces, invalid UTF-8 becomes U+FFFD;
// newlines and tabs stay when keepLines is set.
func terminalSafe(s string, keepLines bool) string {
	unsafe := func(r rune) bool {
		return unicode.IsControl(r) || (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069')
	}
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unsafe) {
		return s
	}
	// strings.Map turns each invalid byte into utf8.RuneError (U+FFFD).
	return strings.Map(func(r rune) rune {
		switch {
		case keepLines && (r == '\n' || r == '\t'):
			return r
		case unsafe(r):
			return ' '
		}
		return r
	}, s)
}

// tableCell is s on one line, cut to max runes, for a table column.
func tableCell(s string, max int) string {
	s = strings.Join(strings.Fields(terminalSafe(s, false)), " ")
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max-1]) + "…"
	}
	return s
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// sizeCell is bridge.FormatBytes, "-" for an unknown (negative) size.
func sizeCell(n int64) string {
	if n < 0 {
		return "-"
	}
	return bridge.FormatBytes(n)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// ---- jobs ----

func cmdJobs(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runSubcommand(ctx, "jobs", jobsUsage, "list or replay?", map[string]opsCommand{
		"list": jobsList, "replay": jobsReplay}, args, getenv, stdout, stderr)
}

// jobView is a job as shown: the queue's own, its last error scrubbed of
// secrets. Jobs carry ids and kinds, never a mail or callback body.
type jobView = jobqueue.Job

func (o *ops) jobView(j jobqueue.Job) jobView {
	j.LastError = o.scrub.Replace(terminalSafe(j.LastError, false))
	return j
}

func jobsList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const name = "jobs list"
	f := newOpsFlags(name, stderr)
	dead := f.fs.Bool("dead", false, "list the dead jobs (the default)")
	retry := f.fs.Bool("retry", false, "list the jobs waiting for their next try")
	o, _, err := f.open(ctx, name, jobsUsage, args, func(rest []string) string {
		if *dead && *retry {
			return "--dead and --retry exclude each other"
		}
		return noArguments(rest)
	}, getenv, stdout)
	if err != nil {
		return err
	}
	defer o.close()
	state, list := "dead", o.queue().Dead
	if *retry {
		state, list = "retry", o.queue().Retrying
	}
	jobs, err := list()
	if err != nil {
		return o.fail(fmt.Errorf("list %s jobs: %w", state, err))
	}
	views := make([]jobView, 0, len(jobs))
	for _, j := range jobs {
		views = append(views, o.jobView(j))
	}
	if o.json {
		return o.writeJSON(struct {
			State string    `json:"state"`
			Jobs  []jobView `json:"jobs"`
		}{state, views})
	}
	if len(views) == 0 {
		if *retry {
			fmt.Fprintln(stdout, "no job is waiting for a retry")
		} else {
			fmt.Fprintln(stdout, "no dead job")
		}
		return nil
	}
	tw := newTable(stdout)
	if *retry {
		fmt.Fprintln(tw, "ID\tKIND\tTICKET\tRETRIED\tFAILED AT\tNEXT TRY\tLAST ERROR")
	} else {
		fmt.Fprintln(tw, "ID\tKIND\tTICKET\tRETRIED\tFAILED AT\tLAST ERROR")
	}
	for _, j := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t", tableCell(j.ID, 80), tableCell(j.Kind, 20), tableCell(j.TicketID, 40), j.Retried,
			timeCell(j.FailedAt))
		if *retry {
			fmt.Fprintf(tw, "%s\t", timeCell(j.NextRunAt))
		}
		fmt.Fprintf(tw, "%s\n", tableCell(j.LastError, 100))
	}
	if err := tw.Flush(); err != nil {
		return o.fail(err)
	}
	if !*retry {
		fmt.Fprintf(stdout, "%d dead job(s); put them back with: supportbridge jobs replay --config FILE (--all | ID...)\n", len(views))
	}
	return nil
}

// replayProgress says how often a replay of total jobs reports its
// progress: about every tenth of the way, and not at all for a handful.
func replayProgress(total int) int {
	if total < 10 {
		return 0
	}
	return max(1, total/10)
}

// uniqueIDs keeps the first of each id, in order: a job named twice is
// replayed once.
func uniqueIDs(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

type replayFailure struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

func jobsReplay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const name = "jobs replay"
	f := newOpsFlags(name, stderr)
	all := f.fs.Bool("all", false, "replay every dead job")
	o, ids, err := f.open(ctx, name, jobsUsage, args, func(ids []string) string {
		switch {
		case *all && len(ids) > 0:
			return "give --all or job ids, not both"
		case !*all && len(ids) == 0:
			return "which jobs? give --all or job ids (see supportbridge jobs list)"
		}
		return ""
	}, getenv, stdout)
	if err != nil {
		return err
	}
	defer o.close()
	if *all {
		dead, err := o.queue().Dead()
		if err != nil {
			return o.fail(fmt.Errorf("list dead jobs: %w", err))
		}
		for _, j := range dead {
			ids = append(ids, j.ID)
		}
	}
	ids = uniqueIDs(ids)
	step := replayProgress(len(ids))
	var replayed []string
	var failed []replayFailure
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(stderr, "interrupted after %d/%d\n", i, len(ids))
			break
		}
		if err := o.queue().Replay(id); err != nil {
			msg := err.Error()
			if errors.Is(err, jobqueue.ErrNotFound) {
				msg = "no such job"
			}
			failed = append(failed, replayFailure{ID: id, Error: o.scrub.Replace(msg)})
			fmt.Fprintf(stderr, "supportbridge %s: job %s: %s\n", name, id, o.scrub.Replace(msg))
		} else {
			replayed = append(replayed, id)
		}
		if step > 0 && ((i+1)%step == 0 || i+1 == len(ids)) {
			fmt.Fprintf(stderr, "replayed %d/%d…\n", i+1, len(ids))
		}
	}
	if o.json {
		if err := o.writeJSON(struct {
			Replayed []string        `json:"replayed"`
			Failed   []replayFailure `json:"failed"`
		}{append([]string{}, replayed...), append([]replayFailure{}, failed...)}); err != nil {
			return err
		}
	} else {
		switch {
		case len(ids) == 0:
			fmt.Fprintln(stdout, "no dead job to replay")
		case len(replayed) == 0:
			// Each failure was said on its own line: no "replayed 0/1".
		default:
			fmt.Fprintf(stdout, "replayed %d/%d job(s): they run again as soon as a daemon's workers take them\n",
				len(replayed), len(ids))
		}
	}
	if len(failed) > 0 || len(replayed)+len(failed) < len(ids) {
		return exitError{1}
	}
	return nil
}

// ---- quarantine ----

func cmdQuarantine(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runSubcommand(ctx, "quarantine", quarantineUsage, "list, assign or discard?", map[string]opsCommand{
		"list": quarantineList, "assign": quarantineAssign, "discard": quarantineDiscard}, args, getenv, stdout, stderr)
}

// quarantinedView is a quarantined mail as shown; Kept says whether its
// raw mail was kept (a mail too large to download was not).
type quarantinedView struct {
	bridge.QuarantinedMail
	Kept bool `json:"kept"`
}

func quarantineList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const name = "quarantine list"
	f := newOpsFlags(name, stderr)
	o, _, err := f.open(ctx, name, quarantineUsage, args, noArguments, getenv, stdout)
	if err != nil {
		return err
	}
	defer o.close()
	mails, err := o.store().Quarantined(ctx)
	if err != nil {
		return o.fail(fmt.Errorf("list quarantined mails: %w", err))
	}
	if o.json {
		views := make([]quarantinedView, 0, len(mails))
		for _, m := range mails {
			views = append(views, quarantinedView{QuarantinedMail: m, Kept: m.RawKey != ""})
		}
		return o.writeJSON(struct {
			Mails []quarantinedView `json:"mails"`
		}{views})
	}
	if len(mails) == 0 {
		fmt.Fprintln(stdout, "no quarantined mail")
		return nil
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "KEY\tRECEIVED\tFROM\tSUBJECT\tREASON\tSIZE")
	for _, m := range mails {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", tableCell(m.Key, 80), timeCell(m.At), tableCell(m.From, 40),
			tableCell(m.Subject, 50), tableCell(m.Reason, 60), sizeCell(m.Size))
	}
	if err := tw.Flush(); err != nil {
		return o.fail(err)
	}
	fmt.Fprintf(stdout, "%d quarantined mail(s); see them in the IMAP mailbox %q; then: supportbridge quarantine assign|discard\n",
		len(mails), o.cfg.IMAP.QuarantineMailbox)
	return nil
}

// quarantined finds a quarantined mail by its key.
func (o *ops) quarantined(ctx context.Context, key string) (bridge.QuarantinedMail, error) {
	mails, err := o.store().Quarantined(ctx)
	if err != nil {
		return bridge.QuarantinedMail{}, fmt.Errorf("list quarantined mails: %w", err)
	}
	for _, m := range mails {
		if m.Key == key {
			return m, nil
		}
	}
	return bridge.QuarantinedMail{}, fmt.Errorf("no quarantined mail has the key %q (see supportbridge quarantine list)", key)
}

func quarantineAssign(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const name = "quarantine assign"
	f := newOpsFlags(name, stderr)
	o, rest, err := f.open(ctx, name, quarantineUsage, args, exactly(2, "give the mail's key and the ticket id"), getenv, stdout)
	if err != nil {
		return err
	}
	key, ticketID := rest[0], rest[1]
	defer o.close()
	m, err := o.quarantined(ctx, key)
	if err != nil {
		return o.fail(err)
	}
	if m.RawKey == "" {
		return o.fail(fmt.Errorf("mail %s has no copy to apply: it was quarantined without being downloaded (%s); "+
			"read it in the IMAP mailbox %q (uid %d) and answer on the ticket by hand, then discard it here",
			key, m.Reason, o.cfg.IMAP.QuarantineMailbox, m.UID))
	}
	// The reply is applied as the daemon applies one, its effects handed
	// to the job queue for the replicas' workers.
	svc := bridge.NewService(o.store(), serviceOptions(o.cfg, o.log, o.queue())...)
	if _, err := svc.Ticket(ctx, ticketID); err != nil {
		if errors.Is(err, bridge.ErrNotFound) {
			return o.fail(fmt.Errorf("ticket %q does not exist: the mail stays in quarantine", ticketID))
		}
		return o.fail(fmt.Errorf("load ticket %s: %w", ticketID, err))
	}
	raw, err := o.store().Raw(ctx, m.RawKey)
	if err != nil {
		if errors.Is(err, bridge.ErrNotFound) {
			return o.fail(fmt.Errorf("the copy of mail %s is gone (kept for imap.raw_retention, %s): "+
				"read it in the IMAP mailbox %q (uid %d), then discard it here", key, o.cfg.IMAP.RawRetention,
				o.cfg.IMAP.QuarantineMailbox, m.UID))
		}
		return o.fail(fmt.Errorf("load mail %s: %w", key, err))
	}
	proc, err := newInboundProcessor(o.cfg, o.log, svc, o.store(), nil)
	if err != nil {
		return o.fail(err)
	}
	outcome, err := proc.ApplyToTicket(ctx, raw, ticketID)
	if err != nil {
		return o.fail(fmt.Errorf("apply mail %s to ticket %s: %w (the mail stays in quarantine)", key, ticketID, err))
	}
	// Removed only once applied: a failure in between leaves it listed,
	// and assigning it again finds the reply already there.
	if err := o.store().Unquarantine(ctx, key); err != nil {
		return o.fail(fmt.Errorf("mail %s applied to ticket %s, but not removed from the quarantine list: %w", key, ticketID, err))
	}
	if o.json {
		return o.writeJSON(struct {
			Key      string `json:"key"`
			TicketID string `json:"ticket_id"`
			Outcome  string `json:"outcome"`
		}{key, ticketID, string(outcome)})
	}
	if outcome == bridge.Duplicate {
		fmt.Fprintf(stdout, "mail %s was already on ticket %s; removed from the quarantine list\n", key, ticketID)
	} else {
		fmt.Fprintf(stdout, "mail %s applied to ticket %s as a desk reply; removed from the quarantine list\n", key, ticketID)
	}
	return nil
}

func quarantineDiscard(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const name = "quarantine discard"
	f := newOpsFlags(name, stderr)
	o, rest, err := f.open(ctx, name, quarantineUsage, args, exactly(1, "give the key of one mail"), getenv, stdout)
	if err != nil {
		return err
	}
	key := rest[0]
	defer o.close()
	if _, err := o.quarantined(ctx, key); err != nil {
		return o.fail(err)
	}
	if err := o.store().Unquarantine(ctx, key); err != nil {
		return o.fail(fmt.Errorf("discard %s: %w", key, err))
	}
	if o.json {
		return o.writeJSON(struct {
			Key       string `json:"key"`
			Discarded bool   `json:"discarded"`
		}{key, true})
	}
	// The mail itself stays in the IMAP quarantine mailbox, and its copy
	// in Redis expires with imap.raw_retention.
	fmt.Fprintf(stdout, "mail %s discarded from the quarantine list (it stays in the IMAP mailbox %q)\n",
		key, o.cfg.IMAP.QuarantineMailbox)
	return nil
}

// ---- ticket ----

func cmdTicket(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runSubcommand(ctx, "ticket", ticketUsage, "show?", map[string]opsCommand{"show": ticketShow},
		args, getenv, stdout, stderr)
}

func ticketShow(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const name = "ticket show"
	f := newOpsFlags(name, stderr)
	o, rest, err := f.open(ctx, name, ticketUsage, args, exactly(1, "give one ticket id"), getenv, stdout)
	if err != nil {
		return err
	}
	defer o.close()
	v, err := o.store().TicketView(ctx, rest[0])
	if err != nil {
		if errors.Is(err, bridge.ErrNotFound) {
			return o.fail(fmt.Errorf("ticket %q does not exist", rest[0]))
		}
		return o.fail(fmt.Errorf("load ticket %s: %w", rest[0], err))
	}
	// The timeline in time order, whatever order the writers appended in
	// (a desk reply carries the date of its mail).
	sort.SliceStable(v.Events, func(i, j int) bool { return v.Events[i].At.Before(v.Events[j].At) })
	sort.SliceStable(v.Exchanges, func(i, j int) bool { return v.Exchanges[i].CreatedAt.Before(v.Exchanges[j].CreatedAt) })
	if o.json {
		return o.writeJSON(v)
	}
	writeTicket(stdout, v)
	return nil
}

func personCell(p *bridge.Person) string {
	if p == nil || (p.ID == "" && p.DisplayName == "" && p.Email == "") {
		return "-"
	}
	return tableCell(p.Label(), 60)
}

func attachmentsCell(atts []bridge.Attachment) string {
	parts := make([]string, 0, len(atts))
	for _, a := range atts {
		parts = append(parts, fmt.Sprintf("%s (%s, %s)", tableCell(a.Filename, 60), tableCell(a.ContentType, 40), sizeCell(a.Size)))
	}
	return strings.Join(parts, ", ")
}

// writeIndented writes text with every line indented, safe for a terminal.
func writeIndented(w io.Writer, text string) {
	text = strings.TrimRight(terminalSafe(text, true), "\n ")
	if text == "" {
		fmt.Fprintln(w, "    (empty)")
		return
	}
	for _, line := range strings.Split(text, "\n") {
		fmt.Fprintln(w, "    "+strings.TrimRight(line, "\r "))
	}
}

func writeTicket(w io.Writer, v bridge.TicketView) {
	t := v.Ticket
	fmt.Fprintf(w, "ticket %s: %s\n\n", tableCell(t.ID, 80), tableCell(t.Subject, 200))
	tw := newTable(w)
	row := func(k, val string) { fmt.Fprintf(tw, "%s\t%s\n", k, val) }
	row("status", string(t.Status))
	row("structure", tableCell(t.StructureID, 80))
	owner := t.Owner
	ownerCell := personCell(&owner)
	if owner.ID != "" {
		ownerCell += " (" + tableCell(owner.ID, 60)
		if owner.Profile != "" {
			ownerCell += ", " + tableCell(owner.Profile, 30)
		}
		ownerCell += ")"
	}
	row("owner", ownerCell)
	row("category", fmt.Sprintf("%s (%s)", tableCell(t.Category.Label, 60), tableCell(t.Category.App, 40)))
	row("locale", tableCell(t.Locale, 10))
	row("created", timeCell(t.CreatedAt))
	row("updated", timeCell(t.UpdatedAt))
	if len(t.Attachments) > 0 {
		row("attachments", attachmentsCell(t.Attachments))
	}
	e := t.Escalation
	row("escalation", string(e.Status))
	if e.Attempt > 0 {
		row("  attempt", strconv.Itoa(e.Attempt))
	}
	if e.EscalatedAt != nil {
		row("  escalated", timeCell(*e.EscalatedAt)+" by "+personCell(e.EscalatedBy))
	}
	if e.DeskReference != "" {
		row("  desk reference", tableCell(e.DeskReference, 80))
	}
	if ds := e.DeskStatus; ds != nil {
		row("  desk status", string(ds.Status)+" "+timeCell(ds.At))
	}
	if e.RootMessageID != "" {
		row("  message-id", tableCell(e.RootMessageID, 120))
	}
	if e.LastError != "" {
		row("  last error", tableCell(e.LastError, 200))
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\ndescription:")
	writeIndented(w, t.Description)

	fmt.Fprintf(w, "\nexchanges (%d):\n", len(v.Exchanges))
	for _, x := range v.Exchanges {
		fmt.Fprintf(w, "  %s  %s  %s  [%s]\n", timeCell(x.CreatedAt), x.Origin, personCell(&x.Author), tableCell(x.ID, 80))
		if len(x.Attachments) > 0 {
			fmt.Fprintf(w, "    attachments: %s\n", attachmentsCell(x.Attachments))
		}
		writeIndented(w, x.Body)
	}

	fmt.Fprintf(w, "\ntimeline (%d):\n", len(v.Events))
	tw = newTable(w)
	fmt.Fprintln(tw, "  AT\tEVENT\tACTOR\tDETAIL")
	for _, ev := range v.Events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", timeCell(ev.At), tableCell(string(ev.Type), 40), personCell(ev.Actor), tableCell(ev.Detail, 120))
	}
	_ = tw.Flush()
}

// ---- status ----

type mailboxStatus struct {
	Configured  bool   `json:"configured"`
	Mailbox     string `json:"mailbox"`
	LeaseHolder string `json:"lease_holder"` // "" when nobody polls
	LeaseFence  int64  `json:"lease_fence"`
	// Checkpoint is nil until the mailbox was read through once.
	Checkpoint *checkpointStatus `json:"checkpoint"`
}

type checkpointStatus struct {
	UIDValidity uint32    `json:"uid_validity"`
	LastUID     uint32    `json:"last_uid"`
	Fence       int64     `json:"fence"`
	UpdatedAt   time.Time `json:"updated_at"`
	AgeSeconds  float64   `json:"age_seconds"`
}

type queueStatus struct {
	Pending int `json:"pending"`
	Active  int `json:"active"`
	Retry   int `json:"retry"`
	Dead    int `json:"dead"`
}

type deploymentStatus struct {
	Queue       queueStatus   `json:"queue"`
	IMAP        mailboxStatus `json:"imap"`
	Quarantined int           `json:"quarantined"`
}

func cmdStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const name = "status"
	f := newOpsFlags(name, stderr)
	o, _, err := f.open(ctx, name, statusUsage, args, noArguments, getenv, stdout)
	if err != nil {
		return err
	}
	defer o.close()
	st, err := o.status(ctx, time.Now())
	if err != nil {
		return o.fail(err)
	}
	if o.json {
		return o.writeJSON(st)
	}
	writeStatus(stdout, st)
	return nil
}

func (o *ops) status(ctx context.Context, now time.Time) (deploymentStatus, error) {
	var st deploymentStatus
	dp, err := o.queue().Depths()
	if err != nil {
		return st, fmt.Errorf("queue depths: %w", err)
	}
	st.Queue = queueStatus{Pending: dp.Pending, Active: dp.Active, Retry: dp.Retry, Dead: dp.Dead}
	mailbox := o.cfg.IMAP.Mailbox
	st.IMAP = mailboxStatus{Configured: o.cfg.IMAP.Enabled(), Mailbox: mailbox}
	st.IMAP.LeaseHolder, st.IMAP.LeaseFence, err = o.store().LeaseHolder(ctx, redisstore.CheckpointLease(mailbox))
	if err != nil {
		return st, err
	}
	cp, err := o.store().LoadCheckpoint(ctx, mailbox)
	if err != nil {
		return st, err
	}
	if cp.UIDValidity != 0 || cp.LastUID != 0 || !cp.UpdatedAt.IsZero() {
		st.IMAP.Checkpoint = &checkpointStatus{UIDValidity: cp.UIDValidity, LastUID: cp.LastUID, Fence: cp.Fence,
			UpdatedAt: cp.UpdatedAt, AgeSeconds: max(0, now.Sub(cp.UpdatedAt).Seconds())}
	}
	q, err := o.store().Quarantined(ctx)
	if err != nil {
		return st, fmt.Errorf("quarantined mails: %w", err)
	}
	st.Quarantined = len(q)
	return st, nil
}

func writeStatus(w io.Writer, st deploymentStatus) {
	tw := newTable(w)
	q := st.Queue
	fmt.Fprintln(tw, "jobs\tpending\tactive\tretry\tdead")
	fmt.Fprintf(tw, "\t%d\t%d\t%d\t%d\n", q.Pending, q.Active, q.Retry, q.Dead)
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = newTable(w)
	m := st.IMAP
	switch {
	case m.Configured:
		fmt.Fprintf(tw, "imap mailbox\t%s\n", tableCell(m.Mailbox, 80))
	case m.LeaseHolder != "":
		// This file reads no mailbox, but a replica of the deployment
		// (with another file) does.
		fmt.Fprintf(tw, "imap mailbox\t%s (imap.addr is not set in this file; a replica reads the mailbox)\n", tableCell(m.Mailbox, 80))
	default:
		fmt.Fprintf(tw, "imap mailbox\t%s (imap.addr is not set: no replica reads it)\n", tableCell(m.Mailbox, 80))
	}
	if m.LeaseHolder != "" {
		fmt.Fprintf(tw, "imap poller\t%s (fence %d)\n", tableCell(m.LeaseHolder, 80), m.LeaseFence)
	} else {
		fmt.Fprintf(tw, "imap poller\tnone holds the lease\n")
	}
	if c := m.Checkpoint; c != nil {
		age := time.Duration(c.AgeSeconds * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(tw, "imap checkpoint\tuidvalidity %d, last uid %d, fence %d, written %s (%s ago)\n",
			c.UIDValidity, c.LastUID, c.Fence, timeCell(c.UpdatedAt), age)
	} else {
		fmt.Fprintf(tw, "imap checkpoint\tnone yet\n")
	}
	fmt.Fprintf(tw, "quarantined mails\t%d\n", st.Quarantined)
	_ = tw.Flush()
	if q.Dead > 0 {
		fmt.Fprintln(w, "\ndead jobs need an operator: supportbridge jobs list --config FILE")
	}
	if st.Quarantined > 0 {
		fmt.Fprintln(w, "quarantined mails need an operator: supportbridge quarantine list --config FILE")
	}
}
